"""relpromote/identity.py: a private key others can read is refused; keys are made private and never overwritten."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from relpromote.errors import BadInput
from relpromote.identity import generate_identity, load_identity, verify_public_key, verify_signature


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o610, 0o601, 0o660, 0o606, 0o620, 0o602])
def test_a_key_others_can_use_is_refused_naming_the_fix(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "me.key"
    generate_identity(key)
    key.chmod(mode)
    with pytest.raises(BadInput, match=re.escape(f"{key}: identity key is readable by others; run `chmod 600 {key}`")):
        load_identity(key)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_private_key_loads_and_signs(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "me.key"
    made = generate_identity(key)
    key.chmod(mode)
    loaded = load_identity(key)
    assert loaded.public_key == made.public_key and verify_public_key(loaded.public_key)
    assert verify_signature(loaded.public_key, b"entry", loaded.sign(b"entry"))
    assert not verify_signature(loaded.public_key, b"other entry", loaded.sign(b"entry"))


def test_a_new_key_is_private_and_never_overwrites_one(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "me.key"
    generate_identity(key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        generate_identity(key)
    assert key.read_bytes() == before


def test_a_missing_or_foreign_key_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no identity key; create one with `relpromote keygen"):
        load_identity(tmp_path / "none.key")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(BadInput, match="ed25519 private key; create one with `relpromote keygen`"):
        load_identity(junk)


def test_public_key_lines_must_be_real_ed25519_keys() -> None:
    assert not verify_public_key("ed25519:" + "A" * 43 + "=" + "A")
    assert not verify_public_key("ed25519:not-base64")
    assert not verify_public_key("rsa:" + "A" * 43 + "=")


def test_a_new_key_in_new_folders_keeps_them_private_and_signs(tmp_path: Path) -> None:
    key = tmp_path / "a" / "b" / "me.key"
    made = generate_identity(key)
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700, "the folder holding the key (Python makes its parents 0755 under umask 022)"
    assert verify_signature(made.public_key, b"m", made.sign(b"m"))
    assert load_identity(key).public_key == made.public_key


def test_each_unusable_key_file_says_how_to_fix_it(tmp_path: Path) -> None:
    missing = tmp_path / "none.key"
    with pytest.raises(BadInput, match=re.escape(
        f"{missing}: no identity key; create one with `relpromote keygen NAME --out {missing}` or pass --identity / set RELPROMOTE_IDENTITY"
    )):
        load_identity(missing)
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    with pytest.raises(BadInput, match=re.escape(f"{folder}: cannot read the identity key (Is a directory)")):
        load_identity(folder)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.key"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    other.write_bytes(pem)
    other.chmod(0o600)
    with pytest.raises(BadInput, match=re.escape(f"{other}: not an ed25519 key; create one with `relpromote keygen`")):
        load_identity(other)


def test_a_keygen_public_key_given_as_the_identity_names_the_private_file(tmp_path: Path) -> None:
    """keygen writes KEYFILE and KEYFILE.pub; --identity KEYFILE.pub is an easy slip. The answer names the private file,
    not `chmod 600` on a public key (after which the key would still not sign)."""
    key = tmp_path / "alice.key"
    public = Path(f"{key}.pub")
    public.write_text(f"{generate_identity(key).public_key} alice\n")  # as `relpromote keygen` writes it
    for mode in (0o644, 0o600):
        public.chmod(mode)
        with pytest.raises(BadInput, match=re.escape(f"{public}: this is a public key; pass the private key file ({key})")):
            load_identity(public)
