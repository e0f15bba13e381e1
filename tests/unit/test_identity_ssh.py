"""SSHSIG verification of hardware-backed keys (sk-ssh-ed25519@openssh.com), without a token: the
signature is made the way a FIDO2 token makes it, and OpenSSH's own `ssh-keygen -Y verify` is the judge
that relpromote's verifier must agree with."""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote.identity import SSH_NAMESPACE, allowed_signers, verify_signature

SK_TYPE = b"sk-ssh-ed25519@openssh.com"


def pack(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def sk_signature(token: Ed25519PrivateKey, message: bytes, flags: int = 0x01) -> tuple[str, str]:
    """(public key line, SSHSIG base64) as a FIDO2 token with this key would produce them."""
    raw = token.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    application = b"ssh:"
    key_blob = pack(SK_TYPE) + pack(raw) + pack(application)
    signed = b"SSHSIG" + pack(SSH_NAMESPACE.encode()) + pack(b"") + pack(b"sha512") + pack(hashlib.sha512(message).digest())
    counter = struct.pack(">I", 7)
    token_signs = hashlib.sha256(application).digest() + bytes([flags]) + counter + hashlib.sha256(signed).digest()
    sig_blob = pack(SK_TYPE) + pack(token.sign(token_signs)) + bytes([flags]) + counter
    blob = b"SSHSIG" + struct.pack(">I", 1) + pack(key_blob) + pack(SSH_NAMESPACE.encode()) + pack(b"") + pack(b"sha512") + pack(sig_blob)
    return f"{SK_TYPE.decode()} {base64.b64encode(key_blob).decode()}", base64.b64encode(blob).decode()


def openssh_verifies(tmp_path: Path, key: str, message: bytes, signature: str) -> bool:
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signers([("carol", key)]))
    armored = tmp_path / "sig"
    armored.write_text("-----BEGIN SSH SIGNATURE-----\n" + "\n".join(textwrap.wrap(signature, 70)) + "\n-----END SSH SIGNATURE-----\n")
    result = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "carol", "-n", SSH_NAMESPACE, "-s", str(armored)],
                            input=message, capture_output=True)
    return result.returncode == 0


@pytest.mark.skipif(subprocess.run(["which", "ssh-keygen"], capture_output=True).returncode != 0, reason="needs openssh-client")
def test_a_hardware_key_signature_verifies_like_openssh_says(tmp_path: Path) -> None:
    token = Ed25519PrivateKey.generate()
    key, signature = sk_signature(token, b"entry hash")
    assert openssh_verifies(tmp_path, key, b"entry hash", signature)
    assert verify_signature(key, b"entry hash", signature)
    assert not verify_signature(key, b"another hash", signature)
    # Without the token's user-presence flag relpromote refuses it (stricter than `ssh-keygen -Y verify`,
    # which accepts it: a decision must have been touched for).
    key, untouched = sk_signature(token, b"entry hash", flags=0x00)
    assert not verify_signature(key, b"entry hash", untouched)
    # Another key's signature is not this key's.
    other_key, _ = sk_signature(Ed25519PrivateKey.generate(), b"x")
    assert not verify_signature(other_key, b"entry hash", signature)
