"""Identities: the keys that sign every ledger entry, and the public key line people paste in the config.

Two kinds of key sign: relpromote's own ed25519 key files (`relpromote keygen`, public key line
`ed25519:<base64>`), and the OpenSSH keys people already hold (`ssh-ed25519 AAAA…`, or hardware-backed
`sk-ssh-ed25519@openssh.com AAAA…`), which sign the way git signs commits with SSH keys:
`ssh-keygen -Y sign -n relpromote` through ssh-agent (identity = the public key file) or a key file
(a passphrase-protected one is asked for its passphrase by ssh-keygen). Their signatures are SSHSIG
blobs, verified here without a subprocess and by `ssh-keygen -Y verify` with `allowed_signers()`.
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import os
import stat
import struct
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from relpromote.adapters.files import read_named_file
from relpromote.errors import BadInput

if TYPE_CHECKING:  # cryptography is imported where a key is used: `status` from a checkpoint verifies nothing
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_PREFIX = "ed25519:"
DEFAULT_IDENTITY = Path("~/.config/relpromote/identity.key")
SSH_NAMESPACE = "relpromote"  # what an SSH signature is for: never valid as a git commit signature, nor the reverse
SSH_KEY_TYPES = ("ssh-ed25519", "sk-ssh-ed25519@openssh.com")
MAX_KEY_FILE_BYTES = 64 << 10  # an ed25519 key file, PEM or OpenSSH, is well under 1 KiB


@dataclass(frozen=True)
class Identity:
    """A signing key and its public key line (`ed25519:<base64>`, or `ssh-ed25519 AAAA…` for an OpenSSH key,
    which then signs through `ssh-keygen -Y sign` with `ssh_key`: a key file, or a public key file whose
    private half is in ssh-agent or on a hardware token)."""

    private_key: Ed25519PrivateKey | None
    public_key: str
    ssh_key: Path | None = None

    def sign(self, message: bytes) -> str:
        if self.ssh_key is not None:
            return ssh_sign(self.ssh_key, message)
        if self.private_key is None:
            raise BadInput("this identity has no private key to sign with")
        return base64.b64encode(self.private_key.sign(message)).decode()


def ssh_sign(key_file: Path, message: bytes) -> str:
    """The SSHSIG signature (base64, unarmored) of `message` by the key `key_file` names."""
    try:
        result = subprocess.run(
            ["ssh-keygen", "-Y", "sign", "-q", "-n", SSH_NAMESPACE, "-f", str(key_file)], input=message, capture_output=True, check=False
        )
    except FileNotFoundError:
        raise BadInput("ssh-keygen is not installed; install openssh-client to sign with an OpenSSH key") from None
    armored = result.stdout.decode(errors="replace")
    if result.returncode != 0 or "BEGIN SSH SIGNATURE" not in armored:
        problem = (result.stderr.decode(errors="replace").strip().splitlines() or ["no signature"])[-1]
        hint = "is the key loaded in ssh-agent (ssh-add -l) and SSH_AUTH_SOCK set?" if key_file.suffix == ".pub" else "wrong passphrase?"
        raise BadInput(f"{key_file}: ssh-keygen could not sign ({problem}); {hint}")
    body = [line for line in armored.splitlines() if line and not line.startswith("-----")]
    return "".join(body)


def _ssh_string(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise ValueError("truncated")
    (length,) = struct.unpack(">I", data[offset:offset + 4])
    end = offset + 4 + length
    if end > len(data):
        raise ValueError("truncated")
    return data[offset + 4:end], end


def _pack(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _verify_sshsig(public_key: str, message: bytes, signature: str) -> bool:
    """Verify an SSHSIG blob (PROTOCOL.sshsig) for namespace relpromote with an ed25519 or sk-ed25519 key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key_type, key_b64 = public_key.split()[:2]
        key_blob = base64.b64decode(key_b64, validate=True)
        blob = base64.b64decode(signature, validate=True)
        if blob[:6] != b"SSHSIG" or struct.unpack(">I", blob[6:10])[0] != 1:
            return False
        embedded, offset = _ssh_string(blob, 10)
        namespace, offset = _ssh_string(blob, offset)
        reserved, offset = _ssh_string(blob, offset)
        hash_name, offset = _ssh_string(blob, offset)
        sig_blob, offset = _ssh_string(blob, offset)
        if embedded != key_blob or namespace != SSH_NAMESPACE.encode() or hash_name not in (b"sha512", b"sha256"):
            return False
        digest = hashlib.new(hash_name.decode(), message).digest()
        signed = b"SSHSIG" + _pack(namespace) + _pack(reserved) + _pack(hash_name) + _pack(digest)
        blob_type, pos = _ssh_string(key_blob, 0)
        raw_key, pos = _ssh_string(key_blob, pos)
        sig_type, pos2 = _ssh_string(sig_blob, 0)
        raw_sig, pos2 = _ssh_string(sig_blob, pos2)
        if blob_type.decode() != key_type or sig_type != blob_type:
            return False
        if key_type == "sk-ssh-ed25519@openssh.com":
            application, _ = _ssh_string(key_blob, pos)
            flags, counter = sig_blob[pos2:pos2 + 1], sig_blob[pos2 + 1:pos2 + 5]
            if len(flags) != 1 or len(counter) != 4 or not flags[0] & 0x01:  # the user touched the token
                return False
            signed = hashlib.sha256(application).digest() + flags + counter + hashlib.sha256(signed).digest()
        elif key_type != "ssh-ed25519":
            return False
        Ed25519PublicKey.from_public_bytes(raw_key).verify(raw_sig, signed)
    except (InvalidSignature, ValueError, IndexError, struct.error):
        return False
    return True


def ssh_public_key_line(text: str) -> str | None:
    """`type base64` of an OpenSSH public key line (the comment dropped), or None when it is not one we sign with."""
    fields = text.strip().split()
    if len(fields) >= 2 and fields[0] in SSH_KEY_TYPES and fields[1].startswith("AAAA"):
        return f"{fields[0]} {fields[1]}"
    return None


def allowed_signers(people: Iterable[tuple[str, str]]) -> str:
    """An allowed-signers file (`ssh-keygen -Y verify -f`) for the OpenSSH keys among (name, key) pairs."""
    return "".join(f'{name} namespaces="{SSH_NAMESPACE}" {key}\n' for name, key in people if ssh_public_key_line(key))


def public_key_line(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode()


@functools.lru_cache(maxsize=65536)
def verify_signature(public_key: str, message: bytes, signature: str) -> bool:
    """Whether `signature` is `public_key`'s over `message`. Pure, so remembered: a command that folds
    the ledger several times verifies each entry's signature once."""
    if ssh_public_key_line(public_key) is not None:
        return _verify_sshsig(public_key, message, signature)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(public_key.removeprefix(KEY_PREFIX), validate=True)
        Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_public_key(public_key: str) -> bool:
    """Whether `public_key` is a well-formed `ed25519:<base64>` line of a real ed25519 public key
    (or an OpenSSH `ssh-ed25519`/`sk-ssh-ed25519@openssh.com` line)."""
    if ssh_public_key_line(public_key) == public_key:
        return True
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        raw = base64.b64decode(public_key.removeprefix(KEY_PREFIX), validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return False
    return public_key.startswith(KEY_PREFIX)


def generate_identity(out: Path) -> Identity:
    """Create a new key at `out` (0600, never overwriting) and return it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
        data = read_named_file(path, MAX_KEY_FILE_BYTES)  # a pipe nobody writes to, or /dev/zero, must not hang
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no identity key; create one with `relpromote keygen NAME --out {path}` "
            "or pass --identity / set RELPROMOTE_IDENTITY"
        ) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the identity key ({exc.strerror})") from None
    public = ssh_public_key_line(data.decode(errors="replace"))
    if public is not None:
        return Identity(None, public, ssh_key=path)  # the private half is in ssh-agent (or a hardware token)
    if data.startswith(KEY_PREFIX.encode()):  # keygen's KEYFILE.pub: signing needs the private half beside it
        private = path.with_suffix("") if path.suffix == ".pub" else "the file keygen wrote with --out"
        raise BadInput(f"{path}: this is a public key; pass the private key file ({private}) as --identity")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BadInput(f"{path}: identity key is readable by others; run `chmod 600 {path}`")
    if data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
        return _openssh_key_file(path)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        key = serialization.load_pem_private_key(data, password=_ask_passphrase(path))
    except ValueError:
        raise BadInput(f"{path}: not an ed25519 private key; create one with `relpromote keygen`") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(f"{path}: not an ed25519 key; create one with `relpromote keygen`")
    return Identity(key, public_key_line(key.public_key()))


def _ask_passphrase(path: Path) -> bytes:
    """A passphrase-protected key file is asked for its passphrase on the terminal, never refused."""
    if not sys.stdin.isatty():
        raise BadInput(f"{path}: the key is passphrase-protected and there is no terminal to ask on; "
                       "run from a terminal, or use an OpenSSH key held in ssh-agent")
    return getpass.getpass(f"passphrase for {path}: ").encode()


def _openssh_key_file(path: Path) -> Identity:
    """An OpenSSH private key file: ssh-keygen signs with it (and asks for its passphrase, if it has one)."""
    public_file = Path(f"{path}.pub")
    public = ssh_public_key_line(public_file.read_text()) if public_file.is_file() else None
    if public is None:
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, text=True, check=False)
        public = ssh_public_key_line(derived.stdout)
    if public is None:
        raise BadInput(f"{path}: an OpenSSH key of a type relpromote does not sign with; use an ed25519 key (ssh-keygen -t ed25519)")
    return Identity(None, public, ssh_key=path)
