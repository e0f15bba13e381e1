"""Run the roles' host-side Ansible modules in this process, as Ansible runs them on a host.

A module file is loaded from its role by path (the shared `module_utils` registered under
`ansible.module_utils`, as AnsiballZ ships them), its arguments handed over the way Ansible hands
them (the JSON document with ANSIBLE_MODULE_ARGS, check mode included), and its one JSON result
read back from what it printed. Nothing is mocked: the module does its real file work.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import importlib.util
import io
import json
import os
import ssl
import sys
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import ansible.module_utils
from ansible.module_utils import basic

from relpromote.testing.nginx import Certificates

REPO = Path(__file__).resolve().parents[2]


def load(relative: str) -> ModuleType:
    """The module file `relative` (to the repository), with its role's module_utils importable.

    Each file is imported under its dotted path (roles.release_deploy.library.release_unpack), the
    name mutation testing gives it; module_utils are also registered under ansible.module_utils.
    """
    path = REPO / relative
    utils = path.parent.parent / "module_utils"
    if utils.is_dir():
        waiting = sorted(utils.glob("*.py"))
        while waiting:  # a util that imports another one not loaded yet waits for the next round
            left = []
            for util in waiting:
                try:
                    loaded = _import(util)
                except ModuleNotFoundError as exc:
                    if not (exc.name or "").startswith("ansible.module_utils.release_") or len(waiting) == 1:
                        raise
                    left.append(util)
                    continue
                sys.modules[f"ansible.module_utils.{util.stem}"] = loaded
                setattr(ansible.module_utils, util.stem, loaded)
            if len(left) == len(waiting):
                raise ImportError(f"module_utils that import each other in a circle: {[u.name for u in left]}")
            waiting = left
    return _import(path)


def _import(path: Path) -> ModuleType:
    name = ".".join(path.relative_to(REPO).with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Outcome:
    failed: bool
    result: dict[str, Any]

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))

    def __getitem__(self, key: str) -> Any:
        return self.result[key]


def run(module: ModuleType, args: dict[str, Any], check: bool = False) -> Outcome:
    """main() of `module` with `args`, as Ansible calls it; its JSON result."""
    document = {"ANSIBLE_MODULE_ARGS": {**args, "_ansible_check_mode": check, "_ansible_no_log": False}}
    basic._ANSIBLE_ARGS = json.dumps(document).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            module.main()
    finally:
        basic._ANSIBLE_ARGS = None
        basic._ANSIBLE_PROFILE = None
    lines = [line for line in out.getvalue().splitlines() if line.strip().startswith("{")]
    assert lines, f"the module printed no result: {out.getvalue()!r}"
    result = json.loads(lines[-1])
    return Outcome(bool(result.get("failed")), result)


@dataclass
class Member:
    """One tar member a test puts in an artifact: name, type and (for files) data or (for links) target."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    linkname: str = ""
    mode: int = 0o644


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    return Member(name, tarfile.REGTYPE, data, mode=mode)


def directory(name: str) -> Member:
    return Member(name, tarfile.DIRTYPE, mode=0o755)


def symlink(name: str, target: str) -> Member:
    return Member(name, tarfile.SYMTYPE, linkname=target, mode=0o777)


def release_members(version: str = "1.0.0") -> list[Member]:
    """What relpromote's own builder puts in an artifact (a root, the app, .release/VERSION)."""
    return [
        directory("."),
        directory("bin"),
        file("bin/restart", b"#!/bin/sh\nexit 0\n", 0o755),
        file("app.py", b"print('hi')\n"),
        directory(".release"),
        file(".release/VERSION", version.encode() + b"\n"),
    ]


# Members' time: long past, so that a file unpacked without it (with the time of the unpack) is told apart.
MTIME = 1_500_000_000


def make_tar(path: Path, members: list[Member]) -> str:
    """Write a tar.gz of `members` at `path`; its sha256."""
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mode = member.mode
            info.mtime = MTIME
            info.linkname = member.linkname
            if member.type == tarfile.REGTYPE:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
            else:
                tar.addfile(info)
    return hashlib.sha256(path.read_bytes()).hexdigest()


NET = os.environ.get("RELPROMOTE_TEST_NET", "127.0.77")


class App:
    """A tiny application on loopback that answers /health with the version `current` points to
    (or with `answer` when a test sets it), as the example app does."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.answer: tuple[int, bytes] | None = None
        self.asked: list[str] = []  # the paths asked, in order
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.asked.append(self.path)
                status, body = app.answer or (200, json.dumps({"version": app.live()}).encode())
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((f"{NET}.1", 0), Handler)
        self.host, self.port = str(self.server.server_address[0]), int(self.server.server_address[1])
        # A short poll: shutdown() waits for it, once per test that serves an application.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def live(self) -> str | None:
        link = self.base / "current"
        return os.path.basename(os.readlink(link).rstrip("/")) if link.is_symlink() else None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


HOOK = """#!/bin/sh
echo "$RELEASE_ACTION $RELEASE_VERSION from ${RELEASE_PREVIOUS_VERSION:-none} in $(pwd)" >> "$RELEASE_BASE_DIR/hook.log"
echo "restarted $RELEASE_VERSION"
"""


def make_release(base: Path, version: str, digest: str | None = None, hook: str = HOOK) -> Path:
    """releases/<version> as release_unpack leaves it: the app, bin/restart and .release/DIGEST."""
    release = base / "releases" / version
    (release / "bin").mkdir(parents=True)
    (release / ".release").mkdir()
    (release / ".release" / "VERSION").write_text(version + "\n")
    if digest is not None:
        (release / ".release" / "DIGEST").write_text(digest + "\n")
    restart = release / "bin" / "restart"
    restart.write_text(hook)
    restart.chmod(0o755)
    # Its file manifest, as release_unpack writes it last (module_utils/release_integrity.py).
    integrity = load_util("roles/release_deploy/module_utils/release_integrity.py")
    integrity.write_manifest(str(release), digest or "")
    return release


def load_util(relative: str) -> ModuleType:
    """A module_utils file of a role, under its dotted path."""
    name = ".".join(Path(relative).with_suffix("").parts)
    return sys.modules.get(name) or _import(REPO / relative)


class _FolderHandler(http.server.SimpleHTTPRequestHandler):
    """Serves its folder, or answers every request with a redirect to `redirect(path)` when set; records each path asked."""

    redirect: Callable[[str], str] | None = None
    asked: list[str]

    def do_GET(self) -> None:
        self.asked.append(self.path)
        if self.redirect is not None:
            self.send_response(302)
            self.send_header("Location", self.redirect(self.path))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


class FolderServer:
    """A real HTTP(S) server on loopback serving `folder` (an artifact server: sha256/DIGEST.tar.gz below it), or
    redirecting every request; `asked` holds the paths asked of it."""

    def __init__(self, folder: Path, tls: Certificates | None = None, redirect: Callable[[str], str] | None = None) -> None:
        self.asked: list[str] = []
        handler = type("Handler", (_FolderHandler,), {"redirect": staticmethod(redirect) if redirect else None, "asked": self.asked})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.server.certificate, tls.server.key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
