"""relpromote/identity.py's OpenSSH side as units (the survivors of `make mutate` on relpromote.identity,
tests/MUTANTS.md): real keys made by ssh-keygen, signatures made by `ssh-keygen -Y sign` (through a real
ssh-agent the test starts), and SSHSIG blobs a forger would write, each refused for its own reason.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import signal
import struct
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from relpromote.errors import BadInput
from relpromote.identity import (
    SSH_NAMESPACE,
    Identity,
    allowed_signers,
    load_identity,
    public_key_line,
    ssh_public_key_line,
    verify_public_key,
    verify_signature,
)

pytestmark = pytest.mark.skipif(subprocess.run(["which", "ssh-agent"], capture_output=True).returncode != 0, reason="needs openssh-client")


@pytest.fixture(autouse=True)
def _verify_afresh() -> None:
    """verify_signature remembers its answers; mutmut forks each mutant's tests from a process that already ran the
    suite, so a remembered answer would hide a mutated verifier. Each test here asks the verifier itself."""
    verify_signature.cache_clear()


def ssh_key(path: Path, kind: str = "ed25519") -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "someone@laptop", "-f", str(path)], check=True)
    fields = Path(f"{path}.pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def openssh_verifies(tmp_path: Path, key: str, message: bytes, signature: str) -> bool:
    signers = tmp_path / "allowed_signers"
    signers.write_text(allowed_signers([("carol", key)]))
    armored = tmp_path / "sig"
    armored.write_text("-----BEGIN SSH SIGNATURE-----\n" + "\n".join(textwrap.wrap(signature, 70)) + "\n-----END SSH SIGNATURE-----\n")
    result = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", "carol", "-n", SSH_NAMESPACE, "-s", str(armored)],
                            input=message, capture_output=True)
    return result.returncode == 0


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    socket = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-a", str(socket), "-s"], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(socket))
    try:
        yield socket
    finally:
        os.kill(pid, signal.SIGTERM)


def test_an_openssh_key_file_signs_and_both_verifiers_agree(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    public = ssh_key(key_file)
    identity = load_identity(key_file)
    assert (identity.private_key, identity.public_key, identity.ssh_key) == (None, public, key_file)
    signature = identity.sign(b"entry hash")
    assert "\n" not in signature and "-----" not in signature
    assert verify_signature(public, b"entry hash", signature) and openssh_verifies(tmp_path, public, b"entry hash", signature)
    assert not verify_signature(public, b"another hash", signature)
    assert verify_public_key(public)
    # Without its .pub file the public half is derived by ssh-keygen.
    Path(f"{key_file}.pub").unlink()
    assert load_identity(key_file).public_key == public


def test_a_public_key_file_signs_through_the_agent_holding_its_private_half(tmp_path: Path, agent: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    public = ssh_key(key_file)
    pub_file = tmp_path / "laptop.pub"  # the private half is only in the agent: ssh-keygen cannot fall back to a file beside it
    pub_file.write_text(Path(f"{key_file}.pub").read_text())
    pub_file.chmod(0o644)  # a public key file may be readable by all
    identity = load_identity(pub_file)
    assert (identity.public_key, identity.ssh_key) == (public, pub_file)
    with pytest.raises(BadInput) as refused:
        identity.sign(b"m")
    assert re.fullmatch(re.escape(f"{pub_file}: ssh-keygen could not sign (") + r".+" +
                        re.escape("); is the key loaded in ssh-agent (ssh-add -l) and SSH_AUTH_SOCK set?"), str(refused.value)), str(refused.value)
    subprocess.run(["ssh-add", "-q", str(key_file)], check=True, capture_output=True)
    assert verify_signature(public, b"m", identity.sign(b"m"))


def test_a_key_file_that_cannot_sign_hints_at_the_passphrase(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    public = ssh_key(key_file)
    identity = load_identity(key_file)
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    with pytest.raises(BadInput) as refused:
        identity.sign(b"m")
    assert str(refused.value).startswith(f"{key_file}: ssh-keygen could not sign (") and str(refused.value).endswith("); wrong passphrase?")
    assert public.startswith("ssh-ed25519 AAAA")


def test_without_ssh_keygen_signing_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "id_ed25519"
    ssh_key(key_file)
    identity = load_identity(key_file)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BadInput) as refused:
        identity.sign(b"m")
    assert str(refused.value) == "ssh-keygen is not installed; install openssh-client to sign with an OpenSSH key"


def test_a_key_file_ssh_keygen_cannot_read_is_refused_as_a_type_we_do_not_sign_with(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    key_file.chmod(0o600)
    with pytest.raises(BadInput, match="an OpenSSH key of a type relpromote does not sign with"):
        load_identity(key_file)


def test_a_passphrase_protected_openssh_key_loads_from_its_public_file_without_asking(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret phrase", "-f", str(key_file)], check=True)
    fields = Path(f"{key_file}.pub").read_text().split()
    assert load_identity(key_file).public_key == f"{fields[0]} {fields[1]}"


def test_a_failed_signature_names_ssh_keygens_own_reason(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    ssh_key(key_file)
    identity = load_identity(key_file)
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n")
    said = subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-n", SSH_NAMESPACE, "-f", str(key_file)], input=b"m", capture_output=True)
    reason = said.stderr.decode().strip().splitlines()[-1]
    with pytest.raises(BadInput) as refused:
        identity.sign(b"m")
    assert str(refused.value) == f"{key_file}: ssh-keygen could not sign ({reason}); wrong passphrase?"


def test_a_key_file_that_is_not_text_is_refused_as_not_a_key(tmp_path: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"\xff\xfe\x00binary\x80")
    junk.chmod(0o600)
    with pytest.raises(BadInput) as refused:
        load_identity(junk)
    assert str(refused.value) == f"{junk}: not an ed25519 private key; create one with `relpromote keygen`"


def test_a_public_key_line_given_as_the_identity_names_the_private_file(tmp_path: Path) -> None:
    line = public_key_line(Ed25519PrivateKey.generate().public_key())
    beside = tmp_path / "me.key.pub"
    beside.write_text(line + "\n")
    with pytest.raises(BadInput) as refused:
        load_identity(beside)
    assert str(refused.value) == f"{beside}: this is a public key; pass the private key file ({tmp_path / 'me.key'}) as --identity"
    pasted = tmp_path / "me.txt"
    pasted.write_text(line + "\n")
    with pytest.raises(BadInput) as elsewhere:
        load_identity(pasted)
    assert str(elsewhere.value) == f"{pasted}: this is a public key; pass the private key file (the file keygen wrote with --out) as --identity"


def test_an_openssh_key_of_another_type_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ecdsa"
    ssh_key(key_file, "ecdsa")
    with pytest.raises(BadInput) as refused:
        load_identity(key_file)
    assert str(refused.value) == f"{key_file}: an OpenSSH key of a type relpromote does not sign with; use an ed25519 key (ssh-keygen -t ed25519)"
    Path(f"{key_file}.pub").unlink()
    with pytest.raises(BadInput, match="an OpenSSH key of a type relpromote does not sign with"):
        load_identity(key_file)


def test_an_openssh_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    ssh_key(key_file)
    key_file.chmod(0o640)
    with pytest.raises(BadInput) as refused:
        load_identity(key_file)
    assert str(refused.value) == f"{key_file}: identity key is readable by others; run `chmod 600 {key_file}`"


def test_a_passphrase_protected_key_without_a_terminal_is_refused_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "locked.key"
    key = Ed25519PrivateKey.generate()
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"secret")))
    key_file.chmod(0o600)
    monkeypatch.setattr("sys.stdin", io.StringIO())  # no terminal, as under cron or CI
    with pytest.raises(BadInput) as refused:
        load_identity(key_file)
    assert str(refused.value) == (f"{key_file}: the key is passphrase-protected and there is no terminal to ask on; "
                                  "run from a terminal, or use an OpenSSH key held in ssh-agent")


def test_an_identity_without_any_key_cannot_sign() -> None:
    with pytest.raises(BadInput) as refused:
        Identity(None, "ed25519:" + "A" * 43 + "=").sign(b"m")
    assert str(refused.value) == "this identity has no private key to sign with"


def test_public_key_lines_of_openssh_keys() -> None:
    line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ"
    assert ssh_public_key_line(f"  {line} someone@laptop extra\n") == line
    assert ssh_public_key_line("sk-ssh-ed25519@openssh.com AAAAGnNr") == "sk-ssh-ed25519@openssh.com AAAAGnNr"
    assert ssh_public_key_line("ssh-rsa AAAAB3NzaC1yc2E") is None
    assert ssh_public_key_line("ssh-ed25519 BBBBC3Nz") is None
    assert ssh_public_key_line("ssh-ed25519") is None
    assert verify_public_key(line) and not verify_public_key(f"{line} someone@laptop")
    raw = Ed25519PrivateKey.generate().public_key()
    assert verify_public_key(public_key_line(raw)) and not verify_public_key(public_key_line(raw).removeprefix("ed25519:"))
    assert allowed_signers([("carol", line), ("alice", public_key_line(raw)), ("dave", f"{line} c")]) == (
        f'carol namespaces="relpromote" {line}\ndave namespaces="relpromote" {line} c\n')


# SSHSIG blobs a forger would write: each one is refused by relpromote as by OpenSSH.


def pack(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


KEY = Ed25519PrivateKey.generate()
RAW = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
KEY_BLOB = pack(b"ssh-ed25519") + pack(RAW)
PUBLIC = "ssh-ed25519 " + base64.b64encode(KEY_BLOB).decode()


def sshsig(message: bytes, *, magic: bytes = b"SSHSIG", version: int = 1, key_blob: bytes = KEY_BLOB, namespace: bytes = b"relpromote",
           hash_name: bytes = b"sha512", signed_hash: bytes | None = None, sig_type: bytes = b"ssh-ed25519", signer: Ed25519PrivateKey = KEY,
           tail: bytes = b"") -> str:
    digest = hashlib.new((signed_hash or hash_name).decode(), message).digest()
    signed = b"SSHSIG" + pack(namespace) + pack(b"") + pack(signed_hash or hash_name) + pack(digest)
    sig_blob = pack(sig_type) + pack(signer.sign(signed))
    blob = magic + struct.pack(">I", version) + pack(key_blob) + pack(namespace) + pack(b"") + pack(hash_name) + pack(sig_blob) + tail
    return base64.b64encode(blob).decode()


def test_a_well_formed_sshsig_verifies_with_either_hash(tmp_path: Path) -> None:
    for hash_name in (b"sha512", b"sha256"):
        signature = sshsig(b"entry", hash_name=hash_name)
        assert verify_signature(PUBLIC, b"entry", signature) and openssh_verifies(tmp_path, PUBLIC, b"entry", signature)


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param(sshsig(b"entry", magic=b"SSHSIH"), id="magic"),
        pytest.param(sshsig(b"entry", version=2), id="version"),
        pytest.param(sshsig(b"entry", namespace=b"git"), id="namespace"),
        pytest.param(sshsig(b"entry", hash_name=b"md5"), id="hash-name"),
        pytest.param(sshsig(b"entry", hash_name=b"sha256", signed_hash=b"sha512"), id="hash-mismatch"),
        pytest.param(sshsig(b"entry", key_blob=pack(b"ssh-ed25519") + pack(bytes(32))), id="other-embedded-key"),
        pytest.param(sshsig(b"entry", sig_type=b"ssh-rsa"), id="signature-type"),
        pytest.param(sshsig(b"entry", signer=Ed25519PrivateKey.generate()), id="other-signer"),
        pytest.param(sshsig(b"entry")[:-8], id="truncated"),
        pytest.param(base64.b64encode(b"SSHSIG" + struct.pack(">I", 1) + struct.pack(">I", 99)).decode(), id="length-past-the-end"),
        pytest.param(base64.b64encode(b"SSHSIG" + struct.pack(">I", 1) + b"\x00\x00").decode(), id="length-cut"),
        pytest.param("not base64!", id="not-base64"),
        pytest.param("", id="empty"),
    ],
)
def test_a_forged_or_damaged_sshsig_never_verifies(forged: str) -> None:
    assert not verify_signature(PUBLIC, b"entry", forged)


def test_a_signature_or_key_with_characters_outside_base64_never_verifies() -> None:
    signature = sshsig(b"entry")
    assert verify_signature(PUBLIC, b"entry", signature)
    assert not verify_signature(PUBLIC, b"entry", signature[:20] + "!" + signature[20:]), "one stored text per signature"
    kind, blob = PUBLIC.split()
    assert not verify_signature(f"{kind} {blob[:20]}*{blob[20:]}", b"entry", signature)


def test_a_key_line_whose_type_is_not_its_blobs_type_never_verifies() -> None:
    signature = sshsig(b"entry")
    lying = "sk-ssh-ed25519@openssh.com " + base64.b64encode(KEY_BLOB).decode()
    assert not verify_signature(lying, b"entry", signature)
    rsa_blob = pack(b"ssh-rsa") + pack(RAW)
    rsa_sig = sshsig(b"entry", key_blob=rsa_blob, sig_type=b"ssh-rsa")
    assert not verify_signature("ssh-ed25519 " + base64.b64encode(rsa_blob).decode(), b"entry", rsa_sig)
