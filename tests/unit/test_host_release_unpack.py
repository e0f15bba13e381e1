"""roles/release_deploy/library/release_unpack.py on hostile artifacts: each refusal with its reason.

The artifacts are built here, member by member, the way an attacker (or a broken build) would;
the module runs as Ansible runs it on a host and does its real file work under tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host_modules import Member, Outcome, directory, file, load, make_tar, release_members, run, symlink

UNPACK = load("roles/release_deploy/library/release_unpack.py")


class Host:
    """An application directory on a "host": releases/ and an upload of the artifact."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.releases = root / "releases"
        self.releases.mkdir(parents=True)
        self.upload = root / "incoming.tar.gz"

    @property
    def dest(self) -> Path:
        return self.releases / "1.0.0"

    @property
    def partial(self) -> Path:
        return self.releases / ".1.0.0.partial"

    def unpack(self, members: list[Member], check: bool = False, **args: object) -> Outcome:
        digest = make_tar(self.upload, members)
        return self.run(digest, check=check, **args)

    def run(self, digest: str, check: bool = False, **args: object) -> Outcome:
        params = {"src": str(self.upload), "dest": str(self.dest), "digest": digest, "version": "1.0.0", **args}
        return run(UNPACK, params, check=check)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path / "opt" / "app")


def documented(outcome: Outcome, host: Host) -> None:
    """The result carries the fields RETURN documents, of their types, whatever happened."""
    result = outcome.result
    assert result["dest"] == str(host.dest) and isinstance(result["digest"], str), result
    assert {key: type(result[key]) for key in ("changed", "src_removed", "present", "uploaded")} == dict.fromkeys(
        ("changed", "src_removed", "present", "uploaded"), bool), result
    assert result["directories"] == [] and result["uploaded"] is False, result


def refused(outcome: Outcome, host: Host, reason: str) -> None:
    """Refused for `reason`, and nothing of the release is left on the host."""
    assert outcome.failed, outcome.result
    assert reason in outcome.msg, outcome.msg
    assert outcome.msg.endswith("; refusing to unpack it"), outcome.msg
    documented(outcome, host)
    assert outcome["present"] is False
    assert not os.path.lexists(host.dest), "a refused artifact must not appear as a release"
    assert not os.path.lexists(host.partial), "a refused artifact's partial directory must be removed"


def test_a_release_appears_complete_with_its_digest_and_normalised_modes(host: Host) -> None:
    digest = make_tar(host.upload, [*release_members(), file("data/secret.txt", b"s", 0o600), file("tool", b"t", 0o700)])
    outcome = host.run(digest)
    assert not outcome.failed, outcome.msg
    assert outcome["changed"] and outcome["members"] == 7 and outcome["src_removed"]
    assert (host.dest / ".release" / "DIGEST").read_text() == digest + "\n"
    assert (host.dest / "app.py").read_text() == "print('hi')\n"
    assert stat.S_IMODE((host.dest / "data" / "secret.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((host.dest / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((host.dest / "data").stat().st_mode) == 0o755
    assert not host.upload.exists() and not host.partial.exists()


def test_a_release_already_holding_the_digest_is_left_alone(host: Host) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest, remove_src=False).failed
    inode = (host.dest / "app.py").stat().st_ino
    again = host.run(digest)
    assert not again.failed and again["present"] and again["src_removed"] and again["changed"]
    assert again["hashed"] == 0, "an untouched release is checked by its files' status alone, nothing is read"
    assert (host.dest / "app.py").stat().st_ino == inode and not host.upload.exists()


def test_the_manifest_records_every_entry_from_the_artifact(host: Host) -> None:
    members = [*release_members(), symlink("bin/run", "restart")]
    digest = make_tar(host.upload, members)
    assert not host.run(digest).failed
    manifest = json.loads((host.dest / ".release" / "FILES.json").read_text())
    assert manifest["digest"] == digest
    entries = manifest["entries"]
    assert entries["app.py"] == ["file", 0o644, len(b"print('hi')\n"), hashlib.sha256(b"print('hi')\n").hexdigest()]
    assert entries["bin/restart"][:2] == ["file", 0o755] and entries["bin"] == ["dir", 0o755]
    assert entries["bin/run"] == ["link", "restart"]
    assert entries[".release/DIGEST"][3] == hashlib.sha256((digest + "\n").encode()).hexdigest()
    assert ".release/FILES.json" not in entries


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda dest: (dest / "app.py").write_text("print('owned')\n"), "app.py: changed (size"),
        (lambda dest: (dest / "app.py").write_text("print('HI')\n"), "app.py: changed (content)"),
        (lambda dest: (dest / "bin" / "extra").write_text("x"), "bin/extra: added"),
        (lambda dest: (dest / "app.py").unlink(), "app.py: removed"),
        (lambda dest: (dest / "app.py").chmod(0o777), "app.py: mode 0777, not 0644"),
        (lambda dest: (dest / ".release" / "FILES.json").unlink(), ".release/FILES.json: missing"),
        (lambda dest: (dest / ".release" / "DIGEST").write_text("0" * 64 + "\n"), ".release/DIGEST: changed"),
    ],
)
def test_a_tampered_release_is_refused_naming_what_differs_then_unpacked_again(host: Host, tamper: Any, named: str) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest, remove_src=False).failed
    tamper(host.dest)
    refused = host.run(digest, src=None)
    assert refused.failed and refused["needs_artifact"] and not refused["present"], refused.result
    assert named in refused.msg and "refusing to use it" in refused.msg, refused.msg
    assert any(problem.startswith(named.split(" (")[0]) for problem in refused["tampered"]), refused["tampered"]
    repaired = host.run(digest)
    assert not repaired.failed and repaired["repaired"] and repaired["changed"], repaired.result
    assert (host.dest / "app.py").read_text() == "print('hi')\n" and not (host.dest / "bin" / "extra").exists()
    assert stat.S_IMODE((host.dest / "app.py").stat().st_mode) == 0o644
    assert not host.partial.exists() and not host.upload.exists()
    assert host.run(digest, src=None)["present"], "the fresh copy matches its manifest"


def test_a_tampered_live_release_is_exchanged_in_place_under_the_link(host: Host) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest, remove_src=False).failed
    (host.root / "current").symlink_to("releases/1.0.0")
    (host.dest / "app.py").write_text("print('owned')\n")
    assert not host.run(digest).failed
    assert (host.root / "current" / "app.py").read_text() == "print('hi')\n"
    assert sorted(p.name for p in host.releases.iterdir()) == ["1.0.0"]


def test_a_file_changed_with_its_old_size_and_time_is_still_found(host: Host) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest, remove_src=False).failed
    target = host.dest / "app.py"
    before = target.stat()
    target.write_text("print('HI')\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    outcome = host.run(digest, src=None)
    assert outcome.failed and "app.py: changed (content)" in outcome.msg


def test_a_tampered_release_in_check_mode_is_reported_not_touched(host: Host) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest, remove_src=False).failed
    (host.dest / "app.py").write_text("print('HI')\n")
    outcome = host.run(digest, check=True, src=None)
    assert not outcome.failed and outcome["changed"] and "would unpack it again" in outcome.msg
    assert (host.dest / "app.py").read_text() == "print('HI')\n"


def test_digest_mismatch_is_refused_and_the_upload_removed(host: Host) -> None:
    make_tar(host.upload, release_members())
    outcome = host.run("0" * 64)
    assert outcome.failed and "expected " + "0" * 64 in outcome.msg and "refusing to unpack it (the upload was removed)" in outcome.msg
    assert outcome["expected"] == "0" * 64 and outcome["actual"] != outcome["expected"]
    assert not host.upload.exists() and not host.dest.exists() and not host.partial.exists()


def test_digest_mismatch_in_check_mode_keeps_the_upload(host: Host) -> None:
    make_tar(host.upload, release_members())
    outcome = host.run("1" * 64, check=True)
    assert outcome.failed and "the upload was kept" in outcome.msg and host.upload.exists()
    assert outcome["changed"] is False


@pytest.mark.parametrize("digest", ["abc", "G" * 64, "0" * 63 + "g", "0" * 65])
def test_a_digest_that_is_not_a_sha256_is_refused_before_anything(host: Host, digest: str) -> None:
    make_tar(host.upload, release_members())
    outcome = host.run(digest)
    assert outcome.failed and "is not a sha256 (64 hexadecimal digits)" in outcome.msg
    documented(outcome, host)
    assert outcome["changed"] is False
    assert host.upload.exists() and not host.dest.exists()


def test_an_uppercase_digest_is_the_same_digest(host: Host) -> None:
    digest = make_tar(host.upload, release_members())
    assert not host.run(digest.upper()).failed
    assert (host.dest / ".release" / "DIGEST").read_text() == digest + "\n"


HOSTILE = [
    pytest.param([file("/etc/cron.d/evil")], "member '/etc/cron.d/evil' has an absolute path", id="absolute-path"),
    pytest.param([file("../evil")], "member '../evil' has a '..' component", id="dotdot"),
    pytest.param([file("bin/../../evil")], "member 'bin/../../evil' has a '..' component", id="dotdot-inside"),
    pytest.param([symlink("etc", "/etc")], "symbolic link 'etc' points to '/etc', outside the release", id="absolute-symlink"),
    pytest.param([symlink("up", "..")], "symbolic link 'up' points to '..', outside the release", id="symlink-dotdot"),
    pytest.param([symlink("bin/up", "../../x")], "symbolic link 'bin/up' points to '../../x', outside the release", id="symlink-leaves"),
    pytest.param([symlink("empty", "")], "symbolic link 'empty' points to '', outside the release", id="symlink-empty"),
    pytest.param([symlink("lib", "bin"), file("lib/evil")], "member 'lib/evil' lies below the symbolic link 'lib'", id="below-symlink"),
    pytest.param([symlink("lib", "bin"), file("lib/a/b/evil")], "member 'lib/a/b/evil' lies below the symbolic link 'lib'", id="deep-below-symlink"),
    pytest.param([file("conf/app.ini"), symlink("conf", "bin")], "symbolic link 'conf' replaces a directory of the release", id="symlink-replaces-dir"),
    pytest.param([Member("passwd", tarfile.LNKTYPE, linkname="app.py")], "member 'passwd' is a hard link", id="hard-link"),
    pytest.param([Member("tty", tarfile.CHRTYPE)], "member 'tty' is a device file", id="char-device"),
    pytest.param([Member("disk", tarfile.BLKTYPE)], "member 'disk' is a device file", id="block-device"),
    pytest.param([Member("pipe", tarfile.FIFOTYPE)], "member 'pipe' is a FIFO", id="fifo"),
    pytest.param([Member("odd", b"Z")], "member 'odd' has an unsupported type", id="unknown-type"),
    pytest.param([file(".release/DIGEST", b"0" * 64)], "member '.release/DIGEST' is reserved for the host's record of the digest", id="digest-member"),
    pytest.param([file("app.py", b"other")], "member 'app.py' appears twice", id="duplicate-file"),
    pytest.param([symlink("app.py", "bin/restart")], "member 'app.py' appears twice", id="file-then-link"),
]


@pytest.mark.parametrize(("extra", "reason"), HOSTILE)
def test_hostile_members_are_refused_with_their_reason(host: Host, extra: list[Member], reason: str) -> None:
    outcome = host.unpack([*release_members(), *extra])
    refused(outcome, host, reason)
    assert outcome["src_removed"] and not host.upload.exists()


@pytest.mark.parametrize(("extra", "reason"), HOSTILE)
def test_hostile_members_are_refused_in_check_mode_too(host: Host, extra: list[Member], reason: str) -> None:
    outcome = host.unpack([*release_members(), *extra], check=True)
    refused(outcome, host, reason)
    assert host.upload.exists(), "check mode changes nothing, the upload included"


def test_nothing_is_written_outside_the_release_before_the_refusal(host: Host, tmp_path: Path) -> None:
    # Files first, then the bad member: what was already unpacked lies in the partial directory only.
    outcome = host.unpack([*release_members(), file("early.txt"), file("../late.txt")])
    refused(outcome, host, "has a '..' component")
    assert not (host.releases / "late.txt").exists() and not (host.root / "late.txt").exists()
    assert sorted(os.listdir(host.releases)) == []


def test_a_link_that_resolves_outside_through_another_link_is_refused(host: Host) -> None:
    # Each target looks inside on its own ("." and "sub/../lnk/.." is "."), but on disk
    # sub/esc -> ../lnk/.. goes through lnk -> . and up out of the release.
    outcome = host.unpack([*release_members(), directory("sub"), symlink("lnk", "."), symlink("sub/esc", "../lnk/..")])
    refused(outcome, host, "symbolic link 'sub/esc' resolves to")
    assert "outside the release" in outcome.msg


def test_links_inside_the_release_are_kept(host: Host) -> None:
    outcome = host.unpack([*release_members(), symlink("restart", "bin/restart"), symlink("bin/self", "."), symlink("bin/app", "../app.py")])
    assert not outcome.failed, outcome.msg
    assert os.readlink(host.dest / "restart") == "bin/restart" and (host.dest / "bin" / "app").read_text() == "print('hi')\n"


def test_the_root_entry_must_be_a_directory(host: Host) -> None:
    outcome = host.unpack([file("."), *release_members()[1:]])
    refused(outcome, host, "the artifact's root entry '.' is not a directory")


def test_an_artifact_without_a_version_file_was_not_built_by_relpromote(host: Host) -> None:
    outcome = host.unpack([directory("."), file("app.py")])
    refused(outcome, host, "the artifact has no .release/VERSION; it was not built by relpromote")


def test_an_artifact_of_another_version_is_refused(host: Host) -> None:
    outcome = host.unpack(release_members("2.0.0"))
    refused(outcome, host, "the artifact's .release/VERSION says '2.0.0', not '1.0.0'")


def test_without_a_version_any_artifact_version_is_accepted(host: Host) -> None:
    digest = make_tar(host.upload, [directory("."), file("app.py")])
    outcome = run(UNPACK, {"src": str(host.upload), "dest": str(host.dest), "digest": digest})
    assert not outcome.failed, outcome.msg


def test_a_truncated_artifact_could_not_be_unpacked(host: Host) -> None:
    make_tar(host.upload, [*release_members(), file("big", os.urandom(200_000))])
    data = host.upload.read_bytes()[:-5000]
    host.upload.write_bytes(data)
    outcome = host.run(hashlib.sha256(data).hexdigest())
    assert outcome.failed and outcome.msg.endswith("; could not unpack it"), outcome.msg
    documented(outcome, host)
    assert not host.dest.exists() and not host.partial.exists()


def test_another_artifact_under_the_same_version_is_refused(host: Host) -> None:
    first = make_tar(host.upload, release_members())
    assert not host.run(first).failed
    second = make_tar(host.upload, [*release_members(), file("changed")])
    outcome = host.run(second)
    assert outcome.failed and outcome.msg == (
        f"{host.dest} already exists holding digest {first}, not {second}: a release's content never changes, "
        "so this is a different artifact under the same version; move it away by hand if it is not live"
    )
    documented(outcome, host)
    assert not (host.dest / "changed").exists()


def test_a_directory_without_a_digest_is_not_taken_for_the_release(host: Host) -> None:
    host.dest.mkdir()
    outcome = host.unpack(release_members())
    assert outcome.failed and "already exists holding digest (none: no .release/DIGEST)" in outcome.msg


def test_a_stale_partial_directory_is_replaced_not_merged(host: Host) -> None:
    host.partial.mkdir()
    (host.partial / "left-over").write_text("from a crashed run")
    outcome = host.unpack(release_members())
    assert not outcome.failed, outcome.msg
    assert not (host.dest / "left-over").exists() and not host.partial.exists()


def test_a_missing_executable_fails_before_the_release_appears(host: Host) -> None:
    for relative, problem, said in [
        ("bin/start", "missing", "is missing"),
        ("bin", "notfile", "is not a file"),
        ("app.py", "noexec", "is not executable"),
    ]:
        outcome = host.unpack(release_members(), executable=relative)
        assert outcome.failed and outcome["executable_problem"] == problem, outcome.result
        assert outcome["changed"] is True and outcome["src_removed"] is True
        assert f"{relative} {said} in release 1.0.0" in outcome.msg
        assert not host.dest.exists() and not host.partial.exists() and not host.upload.exists()
    assert not host.unpack(release_members(), executable="bin/restart").failed


def test_check_mode_reads_the_artifact_and_writes_nothing(host: Host) -> None:
    outcome = host.unpack(release_members(), check=True)
    assert not outcome.failed and outcome["changed"] and outcome["members"] == 5
    assert host.upload.exists() and not host.dest.exists() and not host.partial.exists()


def test_check_mode_without_an_upload_says_what_would_happen(host: Host) -> None:
    outcome = run(UNPACK, {"dest": str(host.dest), "digest": "a" * 64}, check=True)
    assert not outcome.failed and outcome["changed"] and "would upload and unpack" in outcome.msg


def test_a_missing_upload_fails(host: Host) -> None:
    outcome = run(UNPACK, {"src": str(host.upload), "dest": str(host.dest), "digest": "a" * 64})
    assert outcome.failed and f"artifact {host.upload} is not on the host" in outcome.msg
    documented(outcome, host)
    nothing = run(UNPACK, {"dest": str(host.dest), "digest": "a" * 64})
    assert nothing.failed and nothing.msg == "artifact (no src given) is not on the host"
    documented(nothing, host)


def test_previous_names_what_the_link_points_to(host: Host) -> None:
    (host.root / "current").symlink_to("releases/0.9.0")
    outcome = host.unpack(release_members(), link=str(host.root / "current"))
    assert outcome["previous"] == "0.9.0"
    none = run(UNPACK, {"dest": str(host.dest), "digest": outcome["digest"], "link": str(host.root / "nothing")})
    assert none["previous"] == "" and none["present"]


def test_member_name_strips_dot_components_but_never_dotdot() -> None:
    assert UNPACK.member_name(tarfile.TarInfo("./a//b/./c")) == "a/b/c"
    assert UNPACK.member_name(tarfile.TarInfo("./")) == ""
    with pytest.raises(UNPACK.Refused, match=r"'\.\.' component"):
        UNPACK.member_name(tarfile.TarInfo("a/.."))
    UNPACK.check_link("a/b/c", "../x")  # a/x: inside
    UNPACK.check_link("a/b", "..")  # the root itself: inside
    with pytest.raises(UNPACK.Refused, match="outside the release"):
        UNPACK.check_link("a/b", "../..")  # exactly the release's parent
    with pytest.raises(UNPACK.Refused, match="outside the release"):
        UNPACK.check_link("a", "../../etc")
    assert UNPACK.below_link("a/b/c", {"a": "x"}) == "a" and UNPACK.below_link("a/b", {"b": "x"}) is None


def test_repeated_directory_entries_are_fine_but_a_file_and_a_directory_of_one_name_are_not(host: Host) -> None:
    assert not host.unpack([*release_members(), directory("bin"), directory("./bin/")]).failed
    shutil.rmtree(host.dest)
    for members in ([file("x"), directory("x")], [directory("x"), file("x")], [directory("y"), symlink("y", "bin")]):
        outcome = host.unpack([*release_members(), *members])
        refused(outcome, host, "appears twice")


def test_empty_directories_and_file_times_are_kept(host: Host) -> None:
    members = [*release_members(), directory("var"), directory("var/log"), file("stamp", b"t")]
    digest = make_tar(host.upload, members)
    with tarfile.open(host.upload) as tar:
        stamp_time = tar.getmember("stamp").mtime
    assert not host.run(digest).failed
    assert (host.dest / "var" / "log").is_dir() and stat.S_IMODE((host.dest / "var" / "log").stat().st_mode) == 0o755
    assert int((host.dest / "stamp").stat().st_mtime) == stamp_time
    assert stat.S_IMODE((host.dest / "bin").stat().st_mode) == 0o755
    assert stat.S_IMODE((host.dest / ".release" / "DIGEST").stat().st_mode) == 0o644


@pytest.mark.parametrize(("mode", "expected"), [(0o700, 0o755), (0o641, 0o755), (0o610, 0o755), (0o4755, 0o755), (0o666, 0o644), (0o600, 0o644)])
def test_any_execute_bit_makes_a_file_0755_and_none_0644(host: Host, mode: int, expected: int) -> None:
    outcome = host.unpack([*release_members(), file("f", b"x", mode)])
    assert not outcome.failed and stat.S_IMODE((host.dest / "f").stat().st_mode) == expected


def test_a_release_without_its_own_metadata_folder_still_gets_its_digest(host: Host) -> None:
    digest = make_tar(host.upload, [directory("."), file("app.py")])
    outcome = run(UNPACK, {"src": str(host.upload), "dest": str(host.dest), "digest": digest})
    assert not outcome.failed and (host.dest / ".release" / "DIGEST").read_text() == digest + "\n"
    assert stat.S_IMODE((host.dest / ".release").stat().st_mode) == 0o755


def test_folders_the_artifact_does_not_list_are_0755_whatever_the_umask(host: Host) -> None:
    old = os.umask(0)
    try:
        outcome = host.unpack([*release_members(), file("x/y/z.txt")])
    finally:
        os.umask(old)
    assert not outcome.failed
    assert {stat.S_IMODE((host.dest / p).stat().st_mode) for p in ("x", "x/y")} == {0o755}


def test_a_file_is_never_written_through_an_existing_path(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (tmp_path / "a.tar.gz").write_bytes(b"")
    make_tar(tmp_path / "a.tar.gz", [file("f", b"evil")])
    for existing in ("link", "file"):
        path = tmp_path / existing
        if existing == "link":
            path.symlink_to(outside)
        else:
            path.write_text("old")
        with tarfile.open(tmp_path / "a.tar.gz", "r:gz") as tar:
            member = tar.getmember("f")
            with pytest.raises(FileExistsError):
                UNPACK.write_file(tar, member, str(path))
    assert outside.read_text() == "untouched" and (tmp_path / "file").read_text() == "old"


def test_removing_an_upload_that_is_gone_is_not_an_error(tmp_path: Path) -> None:
    assert UNPACK.remove(str(tmp_path / "gone")) is False
    (tmp_path / "there").write_text("x")
    assert UNPACK.remove(str(tmp_path / "there")) is True and not (tmp_path / "there").exists()
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        UNPACK.remove(str(tmp_path / "dir"))


def test_every_documented_option_is_accepted_with_its_type(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(host.root))
    digest = make_tar(host.upload, release_members())
    (host.root / "current").symlink_to("releases/0.9.0")
    outcome = run(UNPACK, {
        "src": "~/incoming.tar.gz", "dest": "~/releases/1.0.0/", "digest": digest, "version": "1.0.0", "link": "~/current",
        "artifact": "~/elsewhere.tar.gz", "directories": [{"path": "/opt/app", "mode": "0755"}], "executable": "bin/restart",
        "hook": "bin/restart", "remove_src": True,
    })
    assert not outcome.failed, outcome.msg
    assert outcome["dest"] == str(host.dest) and outcome["previous"] == "0.9.0" and outcome["directories"] == []
    assert (host.dest / ".release" / "DIGEST").exists() and stat.S_IMODE(host.dest.stat().st_mode) == 0o755
    assert not host.partial.exists() and not (host.dest / ".partial").exists()


def test_dest_and_digest_are_required(host: Host) -> None:
    for args in ({"digest": "a" * 64}, {"dest": str(host.dest)}):
        outcome = run(UNPACK, args)
        assert outcome.failed and "missing required arguments" in outcome.msg


def test_check_mode_still_checks_the_version(host: Host) -> None:
    refused(host.unpack([directory("."), file("app.py")], check=True), host, "the artifact has no .release/VERSION")


def test_folders_made_for_files_are_0755_even_under_umask_0(host: Host) -> None:
    old = os.umask(0)
    try:
        digest = make_tar(host.upload, [directory("."), file("solo/f.txt"), directory("listed"), file(".release/VERSION", b"1.0.0\n")])
        outcome = host.run(digest)
    finally:
        os.umask(old)
    assert not outcome.failed, outcome.msg
    assert {p: stat.S_IMODE((host.dest / p).stat().st_mode) for p in ("solo", "listed", ".release")} == dict.fromkeys(("solo", "listed", ".release"), 0o755)


def test_replace_swaps_two_folders_and_leaves_nothing_aside(tmp_path: Path) -> None:
    fresh, dest = tmp_path / "fresh", tmp_path / "dest"
    fresh.mkdir()
    dest.mkdir()
    (fresh / "new").write_text("n")
    (dest / "old").write_text("o")
    UNPACK.replace(str(fresh), str(dest))
    assert sorted(os.listdir(dest)) == ["new"] and sorted(os.listdir(fresh)) == ["old"]
    assert sorted(os.listdir(tmp_path)) == ["dest", "fresh"]
    with pytest.raises(OSError):
        UNPACK.replace(str(tmp_path / "none"), str(dest))
    assert sorted(os.listdir(dest)) == ["new"]
