"""Identities: ed25519 keys that sign every ledger entry, and the public key line people paste in the config."""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from relpromote.errors import BadInput

KEY_PREFIX = "ed25519:"
DEFAULT_IDENTITY = Path("~/.config/relpromote/identity.key")


@dataclass(frozen=True)
class Identity:
    """A private signing key and its public key line (`ed25519:<base64>`)."""

    private_key: Ed25519PrivateKey
    public_key: str

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private_key.sign(message)).decode()


def public_key_line(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


def verify_signature(public_key: str, message: bytes, signature: str) -> bool:
    try:
        raw = base64.b64decode(public_key.removeprefix(KEY_PREFIX), validate=True)
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_public_key(public_key: str) -> bool:
    """Whether `public_key` is a well-formed `ed25519:<base64>` line of a real ed25519 public key."""
    try:
        raw = base64.b64decode(public_key.removeprefix(KEY_PREFIX), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return False
    return public_key.startswith(KEY_PREFIX)


def generate_identity(out: Path) -> Identity:
    """Create a new key at `out` (0600, never overwriting) and return it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{out}: already exists; choose another --out or remove the old key first") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return Identity(key, public_key_line(key.public_key()))


def load_identity(path: Path) -> Identity:
    path = path.expanduser()
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no identity key; create one with `relpromote keygen NAME --out {path}` "
            "or pass --identity / set RELPROMOTE_IDENTITY"
        ) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the identity key ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(f"{path}: identity key is readable by others; run `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{path}: not an unencrypted ed25519 private key; create one with `relpromote keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path}: not an ed25519 key; create one with `relpromote keygen`")
    return Identity(key, public_key_line(key.public_key()))
