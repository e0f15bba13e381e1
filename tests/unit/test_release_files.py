"""relpromote/release_files.py against the host: the manifest the controller computes from an artifact is, byte for
byte, the one release_unpack writes on a host for it (real unpacks of real artifacts); and release_integrity's check
with that digest refuses a manifest rewritten on the host, whatever it says."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import IO, cast

import pytest

from relpromote import release_files
from relpromote.adapters.artifact_store import LocalArtifactStore
from relpromote.artifact import build_artifact, sha256_file
from relpromote.errors import BadInput
from relpromote.manifest import parse_manifest
from relpromote.project import Project
from relpromote.release import Release
from relpromote.usecases import release_files as runs_files
from tests.unit.host_modules import Member, directory, file, load, load_util, make_tar, release_members, run, symlink

UNPACK = load("roles/release_deploy/library/release_unpack.py")
INTEGRITY = load_util("roles/release_deploy/module_utils/release_integrity.py")
MANIFEST = parse_manifest('version: "1.0.0"\nchanges: [{id: CH-1, type: fix, title: t, owner: o, why: w, how: h}]\n', "m.yml")
REWRITTEN = ".release/FILES.json: differs from the artifact's file list (rewritten on the host)"


def unpack_on_host(artifact: Path, digest: str, dest: Path, **args: object) -> dict[str, object]:
    dest.parent.mkdir(parents=True, exist_ok=True)
    outcome = run(UNPACK, {"src": str(artifact), "dest": str(dest), "digest": digest, "version": "1.0.0", "remove_src": False, **args})
    assert not outcome.failed, outcome.msg
    return outcome.result


def computed(artifact: Path, digest: str) -> tuple[release_files.Entries, str]:
    with artifact.open("rb") as handle:
        actual, entries = release_files.unpacked_entries(handle, digest)
    assert actual == digest
    with artifact.open("rb") as handle:
        assert release_files.verified_files_digest(handle, digest) == release_files.files_digest(digest, entries)
    return entries, release_files.files_digest(digest, entries)


def assert_agrees(artifact: Path, digest: str, dest: Path) -> release_files.Entries:
    """The controller's manifest is the host's: same entries, same bytes, same sha256."""
    entries, files_digest = computed(artifact, digest)
    unpack_on_host(artifact, digest, dest)
    written = (dest / ".release" / "FILES.json").read_bytes()
    assert json.loads(written)["entries"] == entries
    assert written == release_files.manifest_body(digest, entries)
    assert hashlib.sha256(written).hexdigest() == files_digest
    assert INTEGRITY.files_digest(digest, json.loads(written)["entries"]) == files_digest
    assert INTEGRITY.check(str(dest), full=True, expected=files_digest) == ([], len([e for e in entries.values() if e[0] == "file"]))
    return entries


def test_a_built_artifact_with_links_empty_folders_executables_nesting_and_unicode_names(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "deep" / "er" / "est").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "private").mkdir(mode=0o700)
    (source / "app.py").write_text("print('hi')\n")
    (source / "bin").mkdir()
    (source / "bin" / "restart").write_text("#!/bin/sh\nexit 0\n")
    (source / "bin" / "restart").chmod(0o700)
    (source / "deep" / "er" / "est" / "x.txt").write_text("deep\n")
    (source / "secret.txt").write_text("s\n")
    (source / "secret.txt").chmod(0o600)
    (source / "café").mkdir()
    (source / "café" / "naïve 日本.txt").write_text("unicode\n")
    (source / "spaces and \"quotes\".txt").write_text("q\n")
    os.symlink("deep/er", source / "shortcut")
    os.symlink("../app.py", source / "bin" / "app")
    artifact = tmp_path / "a.tar.gz"
    with artifact.open("wb") as handle:
        build_artifact(source, MANIFEST, {"version": "1.0.0"}, handle)
    digest = sha256_file(artifact)

    entries = assert_agrees(artifact, digest, tmp_path / "host" / "releases" / "1.0.0")
    assert entries["bin/restart"][:2] == ["file", 0o755] and entries["secret.txt"][:2] == ["file", 0o644]
    assert entries["private"] == ["dir", 0o755] and entries["empty"] == ["dir", 0o755]
    assert entries["shortcut"] == ["link", "deep/er"] and entries["bin/app"] == ["link", "../app.py"]
    assert entries["café/naïve 日本.txt"][0] == "file"
    assert entries[".release/DIGEST"] == ["file", 0o644, 65, hashlib.sha256(f"{digest}\n".encode()).hexdigest()]
    assert ".release/FILES.json" not in entries


def test_members_as_any_tar_writes_them_parents_left_out_modes_and_duplicates(tmp_path: Path) -> None:
    members = [
        *release_members(),
        file("a/b/c/d.txt", b"no parent members\n", 0o640),
        file("./dot/x", b"dot\n", 0o4755),  # setuid dropped: 0755
        directory("dot"),  # after its child, and again
        directory("dot/"),
        Member("odd", tarfile.DIRTYPE, mode=0o700),
        symlink("a/b/up", "../../app.py"),
        file("run.sh", b"#!/bin/sh\n", 0o010),  # any execute bit: 0755
        file("empty.txt", b""),
    ]
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, members)
    entries = assert_agrees(artifact, digest, tmp_path / "host" / "releases" / "1.0.0")
    assert [entries[name] for name in ("a", "a/b", "a/b/c", "odd")] == [["dir", 0o755]] * 4
    assert entries["dot/x"][:2] == ["file", 0o755] and entries["run.sh"][:2] == ["file", 0o755]
    assert entries["empty.txt"] == ["file", 0o644, 0, hashlib.sha256(b"").hexdigest()]


def test_an_artifact_that_ships_a_manifest_of_its_own_has_it_replaced_on_both_sides(tmp_path: Path) -> None:
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, [*release_members(), file(".release/FILES.json", b'{"format": 1, "entries": {}}')])
    entries = assert_agrees(artifact, digest, tmp_path / "host" / "releases" / "1.0.0")
    assert ".release/FILES.json" not in entries


def test_the_controller_refuses_bytes_that_are_not_the_ledgers_and_members_the_host_refuses(tmp_path: Path) -> None:
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, release_members())
    with artifact.open("rb") as handle, pytest.raises(BadInput, match="the ledger says"):
        release_files.verified_files_digest(handle, "0" * 64)
    with pytest.raises(BadInput, match="cannot be read"):
        release_files.unpacked_entries(io.BytesIO(b"not a tar.gz at all"), digest)
    for member in (Member("hard", tarfile.LNKTYPE, linkname="app.py"), Member("fifo", tarfile.FIFOTYPE), Member("../up", tarfile.REGTYPE),
                   Member("/abs", tarfile.REGTYPE)):
        hostile = tmp_path / "h.tar.gz"
        make_tar(hostile, [*release_members(), member])
        with hostile.open("rb") as handle, pytest.raises(BadInput, match=repr(member.name)):
            release_files.unpacked_entries(handle, digest)


def test_the_digest_covers_the_artifact_digest_the_format_and_every_entry() -> None:
    entries: release_files.Entries = {"a": ["file", 0o644, 1, "0" * 64], "b": ["dir", 0o755]}
    base = release_files.files_digest("d" * 64, entries)
    assert release_files.files_digest("d" * 64, dict(reversed(entries.items()))) == base, "key order does not matter"
    assert release_files.files_digest("e" * 64, entries) != base
    for changed in ({**entries, "a": ["file", 0o755, 1, "0" * 64]}, {**entries, "c": ["link", "a"]}, {"a": entries["a"]}):
        assert release_files.files_digest("d" * 64, changed) != base
    assert release_files.FORMAT == INTEGRITY.FORMAT and release_files.MANIFEST == INTEGRITY.MANIFEST
    assert INTEGRITY.manifest_body("d" * 64, entries) == release_files.manifest_body("d" * 64, entries)


@pytest.fixture
def unpacked(tmp_path: Path) -> tuple[Path, str, str]:
    """A release unpacked on a "host": its folder, its artifact digest and its files digest."""
    artifact = tmp_path / "a.tar.gz"
    digest = make_tar(artifact, [*release_members(), directory("lib"), file("lib/x.py", b"x = 1\n")])
    _, files_digest = computed(artifact, digest)
    dest = tmp_path / "host" / "releases" / "1.0.0"
    unpack_on_host(artifact, digest, dest)
    return dest, digest, files_digest


def rewrite(dest: Path, change: object) -> None:
    """What an insider does: edit the tree, then write the manifest to match it (last, so that it is the newest)."""
    path = dest / ".release" / "FILES.json"
    document = json.loads(path.read_text())
    if callable(change):
        change(document)
    path.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")))


def test_check_with_the_files_digest_refuses_a_manifest_rewritten_to_match_an_edit(unpacked: tuple[Path, str, str]) -> None:
    dest, _, files_digest = unpacked
    (dest / "app.py").write_text("print('owned')\n")
    rewrite(dest, lambda d: d["entries"].__setitem__("app.py", INTEGRITY.describe(str(dest))["app.py"]))
    assert INTEGRITY.check(str(dest)) == ([], 0), "without the digest the rewrite passes (the hole this closes)"
    assert INTEGRITY.check(str(dest), expected=files_digest) == ([REWRITTEN], 0)
    assert INTEGRITY.check(str(dest), full=True, expected=files_digest) == ([REWRITTEN], 0)
    assert INTEGRITY.differences(str(dest), json.loads(INTEGRITY.manifest_body(unpacked[1], computed_entries(unpacked)))["entries"]) == [
        "app.py: changed (size 15, not 12)"]


def computed_entries(unpacked: tuple[Path, str, str]) -> release_files.Entries:
    artifact = unpacked[0].parents[2] / "a.tar.gz"
    with artifact.open("rb") as handle:
        return release_files.unpacked_entries(handle, unpacked[1])[1]


@pytest.mark.parametrize("how", [
    "digest field", "an entry added", "an entry removed", "a mode", "format", "entries not a dict", "an entry not a list",
])
def test_check_with_the_files_digest_refuses_every_other_manifest(unpacked: tuple[Path, str, str], how: str) -> None:
    dest, _, files_digest = unpacked
    changes = {
        "digest field": lambda d: d.__setitem__("digest", "f" * 64),
        "an entry added": lambda d: d["entries"].__setitem__("extra", ["dir", 0o755]),
        "an entry removed": lambda d: d["entries"].pop("lib/x.py"),
        "a mode": lambda d: d["entries"].__setitem__("lib", ["dir", 0o777]),
        "format": lambda d: d.__setitem__("format", 2),
        "entries not a dict": lambda d: d.__setitem__("entries", []),
        "an entry not a list": lambda d: d["entries"].__setitem__("app.py", 7),
    }
    rewrite(dest, changes[how])
    problems, hashed = INTEGRITY.check(str(dest), expected=files_digest)
    assert problems in ([REWRITTEN], [".release/FILES.json: missing or unreadable, the release cannot be checked"]) and hashed == 0
    assert problems, f"{how}: accepted"


def test_check_with_the_files_digest_accepts_the_same_manifest_written_otherwise(unpacked: tuple[Path, str, str]) -> None:
    dest, _, files_digest = unpacked
    path = dest / ".release" / "FILES.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=2))  # same content, other bytes: the content is checked
    assert INTEGRITY.check(str(dest), expected=files_digest) == ([], 0)
    assert INTEGRITY.check(str(dest), expected=None) == ([], 0)
    assert INTEGRITY.check(str(dest), expected="") == ([], 0), "an empty digest is no digest (a plain ansible-playbook run)"


def test_unpack_given_the_files_digest_repairs_a_rewritten_release_and_names_what_differed(unpacked: tuple[Path, str, str]) -> None:
    dest, digest, files_digest = unpacked
    (dest / "app.py").write_text("print('owned')\n")
    (dest / "added.py").write_text("x\n")
    rewrite(dest, lambda d: d["entries"].update({name: entry for name, entry in INTEGRITY.describe(str(dest)).items()}))
    artifact = dest.parents[2] / "a.tar.gz"
    skipped = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0"})
    assert not skipped.failed and skipped["present"], "without the digest the rewritten release is taken as it is"
    refused = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "files_digest": files_digest})
    assert refused.failed and refused["needs_artifact"] and refused["tampered"] == [REWRITTEN]
    assert "rewritten on the host" in refused.msg
    repaired = unpack_on_host(artifact, digest, dest, files_digest=files_digest)
    assert repaired["repaired"] is True
    assert repaired["tampered"] == [REWRITTEN, "added.py: added", "app.py: changed (size 15, not 12)"]
    assert (dest / "app.py").read_text() == "print('hi')\n" and not (dest / "added.py").exists()
    assert hashlib.sha256((dest / ".release" / "FILES.json").read_bytes()).hexdigest() == files_digest
    again = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "files_digest": files_digest})
    assert not again.failed and again["present"] and "tampered" not in again.result


def test_switch_rollback_and_verify_given_the_files_digest_refuse_a_rewritten_manifest(unpacked: tuple[Path, str, str]) -> None:
    dest, digest, files_digest = unpacked
    base = dest.parents[1]
    (dest / "app.py").write_text("print('owned')\n")
    rewrite(dest, lambda d: d["entries"].__setitem__("app.py", INTEGRITY.describe(str(dest))["app.py"]))
    switch = load("roles/release_deploy/library/release_switch.py")
    args = {"path": str(base / "current"), "target": "releases/1.0.0"}
    refused = run(switch, {**args, "files_digest": files_digest})
    assert refused.failed and refused["tampered"] == [REWRITTEN] and not (base / "current").exists()
    rollback = load("roles/release_rollback/library/release_rollback.py")
    back = run(rollback, {"base_dir": str(base), "version": "1.0.0", "digest": digest, "service_host": "127.0.0.1", "service_port": 9,
                          "files_digest": files_digest}, check=True)
    assert not back.failed and back["present"] is False and back["tampered"] == [REWRITTEN]
    switched = run(switch, args)  # without the digest: today's behaviour, the rewritten manifest is believed
    assert not switched.failed and (base / "current").is_symlink()
    verify = load("roles/release_deploy/library/release_verify.py")
    common = {"base_dir": str(base), "service_host": "127.0.0.1", "service_port": 9}
    assert run(verify, common)["integrity"] == []
    assert run(verify, {**common, "files_digest": files_digest})["integrity"] == [REWRITTEN]
    assert run(verify, {**common, "files_digest": files_digest, "version": "1.0.0"})["integrity"] == [REWRITTEN]
    assert run(verify, {**common, "files_digest": files_digest, "version": "0.9.0"})["integrity"] == [], "another release's digest"


def test_the_unpack_inspection_given_the_files_digest_suspects_a_rewritten_manifest_without_python(unpacked: tuple[Path, str, str]) -> None:
    """The action plugin's one shell command: a release whose manifest is not the controller's runs the module."""
    dest, _, files_digest = unpacked
    action = load("roles/release_deploy/action_plugins/release_unpack.py")

    def suspect(digest: str | None) -> str:
        script = action.inspect_command(str(dest), "", [], False, files_digest=digest)
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30, check=True)
        return str(action.parse(done.stdout)["suspect"])

    assert suspect(files_digest) == "no", "the manifest the controller computed: nothing to hash"
    (dest / "app.py").write_text("print('owned')\n")
    rewrite(dest, lambda d: d["entries"].__setitem__("app.py", INTEGRITY.describe(str(dest))["app.py"]))
    assert suspect(None) == "no", "without the digest the rewrite is not seen"
    assert suspect(files_digest) == "yes"
    manifest = dest / ".release" / "FILES.json"
    manifest.unlink()
    (dest / "elsewhere.json").write_bytes(b"{}")
    manifest.symlink_to("../elsewhere.json")
    assert suspect(files_digest) == "yes"



def test_a_run_takes_the_signed_record_of_todays_rules_else_computes_it_from_the_verified_stored_artifact(tmp_path: Path) -> None:
    make_tar(tmp_path / "a.tar.gz", release_members())
    store = LocalArtifactStore(tmp_path / "store")

    def produce(out: IO[bytes]) -> None:
        out.write((tmp_path / "a.tar.gz").read_bytes())

    digest, path = store.write(produce)
    project = cast(Project, SimpleNamespace(store=store))
    _, expected = computed(path, digest)

    def release(files_digest: str | None, rules: int | None, of: str = digest) -> Release:
        return Release("1.0.0", of, 1, "alice", "t", {}, {}, files_digest=files_digest, files_rules=rules)

    recorded = "a" * 64
    assert runs_files.files_vars(project, release(recorded, release_files.RULES)) == {"release_files_digest": recorded}
    assert runs_files.files_digest_of(project, release(None, None)) == expected, "a build recorded before: computed"
    assert runs_files.files_digest_of(project, release(recorded, release_files.RULES + 1)) == expected, "other rules: computed"
    assert runs_files.files_vars(project, release(None, None, of="b" * 64)) == {}, "no artifact here (a pulling controller): none"
    other = tmp_path / "other.tar.gz"
    other_digest = make_tar(other, [*release_members(), file("x", b"y")])
    stored = store.path_for(other_digest)
    stored.write_bytes(path.read_bytes())  # the store's copy is not the ledger's bytes
    with pytest.raises(BadInput, match="the ledger says"):
        runs_files.files_digest_of(project, release(None, None, of=other_digest))
    with pytest.raises(BadInput, match="the ledger says"):
        runs_files.files_vars(project, release(None, None, of=other_digest))
    assert runs_files.files_vars(project, release(None, None, of=other_digest), strict=False) == {}, "a rollback runs all the same"


def touch_after_edit(dest: Path) -> None:
    """The manifest left as the controller computed it, only written again after a file was edited: its time is newest."""
    (dest / "app.py").write_text("print('ow')\n")  # the same size
    manifest = dest / ".release" / "FILES.json"
    body = manifest.read_bytes()
    time.sleep(0.01)
    manifest.write_bytes(body)
    assert (dest / "app.py").stat().st_ctime_ns < manifest.stat().st_mtime_ns


def test_a_file_edited_before_the_manifest_was_touched_is_found_by_unpack_and_rollback_given_the_digest(unpacked: tuple[Path, str, str]) -> None:
    dest, digest, files_digest = unpacked
    touch_after_edit(dest)
    assert INTEGRITY.check(str(dest), expected=files_digest) == ([], 0), "the ctime shortcut alone cannot see it"
    refused = run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0", "files_digest": files_digest})
    assert refused.failed and refused["tampered"] == ["app.py: changed (content)"] and refused["hashed"] == 5
    assert not run(UNPACK, {"dest": str(dest), "digest": digest, "version": "1.0.0"}).failed, "without the digest: today's shortcut"
    rollback = load("roles/release_rollback/library/release_rollback.py")
    back = run(rollback, {"base_dir": str(dest.parents[1]), "version": "1.0.0", "digest": digest, "service_host": "127.0.0.1",
                          "service_port": 9, "files_digest": files_digest}, check=True)
    assert back["present"] is False and back["tampered"] == ["app.py: changed (content)"]

