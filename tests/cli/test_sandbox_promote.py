"""The newcomer's path without root: `init --sandbox`, one person, a build, a promotion to qa on the two simulated hosts
(Ansible's local connection). `make demo` and the README's walkthrough stand on this."""

from __future__ import annotations

from pathlib import Path

from relpromote.usecases.sandbox import stop_sandbox_apps
from tests.helpers import Cli, write_manifest


def test_a_release_goes_live_on_the_sandbox(tmp_path: Path) -> None:
    Cli(tmp_path).run("init", str(tmp_path / "shop"), "--sandbox", check=True)
    cli = Cli(tmp_path / "shop")
    try:
        for name, role in (("alice", "release_manager"), ("oscar", "operator")):
            cli.run("keygen", name, "--out", str(cli.cwd / ".keys" / f"{name}.key"), check=True)
            cli.run("people", "add", name, "--key", str(cli.cwd / ".keys" / f"{name}.key.pub"), "--role", role, check=True)
        manifest = write_manifest(tmp_path / "release-1.0.0.yml", "1.0.0")
        cli.run("build", "1.0.0", "--source", "app-source", "--manifest", str(manifest), identity="alice", check=True)
        result = cli.run("promote", "1.0.0", "--to", "qa", identity="oscar")
        assert result.returncode == 0, result.stderr
        for host in ("qa-app-1", "qa-app-2"):
            assert (cli.cwd / "hosts" / host / "opt" / "shop" / "current").readlink() == Path("releases/1.0.0")
    finally:
        stop_sandbox_apps(cli.cwd)
