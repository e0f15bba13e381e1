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
