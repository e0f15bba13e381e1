"""Test helpers shipped for users of relpromote (real sshd hosts for integration tests)."""
