"""`content: {collection: ...}` naming a collection that is not installed where it says: one line, exit 2, nothing runs."""

from __future__ import annotations

from pathlib import Path

import yaml

from relpromote.usecases.sandbox import stop_sandbox_apps
from tests.helpers import Cli, one_line_error, write_manifest


def test_a_collection_that_is_not_installed_is_a_one_line_error_and_no_host_changes(tmp_path: Path) -> None:
    Cli(tmp_path).run("init", str(tmp_path / "shop"), "--sandbox", check=True)
    cli = Cli(tmp_path / "shop")
    try:
        for name, role in (("alice", "release_manager"), ("oscar", "operator")):
            cli.run("keygen", name, "--out", str(cli.cwd / ".keys" / f"{name}.key"), check=True)
            cli.run("people", "add", name, "--key", str(cli.cwd / ".keys" / f"{name}.key.pub"), "--role", role, check=True)
        config_path = cli.cwd / "relpromote.yml"
        config = yaml.safe_load(config_path.read_text())
        config["content"] = {"collection": "relpromote.release", "path": "collections"}
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        (cli.cwd / "collections").mkdir()  # empty: nothing installed there
        manifest = write_manifest(tmp_path / "release-1.0.0.yml", "1.0.0")
        cli.run("build", "1.0.0", "--source", "app-source", "--manifest", str(manifest), identity="alice", check=True)
        result = cli.run("promote", "1.0.0", "--to", "qa", identity="oscar")
        assert result.returncode == 2, result.stdout + result.stderr
        said = one_line_error(result)
        assert "relpromote.release.promote" in said and "ansible-galaxy collection install" in said
        assert not (cli.cwd / "hosts" / "qa-app-1" / "opt" / "shop" / "current").is_symlink()
    finally:
        stop_sandbox_apps(cli.cwd)
