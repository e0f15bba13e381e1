"""Adapters at the edge: storage, git, the artifact store, ansible-runner, mail."""
