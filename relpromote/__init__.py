"""relpromote: promote one immutable, digest-pinned release through qa, deployment and production."""

__version__ = "0.1.0"
