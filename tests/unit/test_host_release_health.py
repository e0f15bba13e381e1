"""module_utils/release_health: the one way the host-side modules ask the application's health endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.unit.host_modules import load_util

HEALTH = load_util("roles/release_deploy/module_utils/release_health.py")


class _App:
    """A real HTTP server on loopback whose /health answer the test sets."""

    def __init__(self) -> None:
        self.status, self.body = 200, b'{"version": "1.0.0"}'
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(app.status)
                self.send_header("Content-Length", str(len(app.body)))
                self.end_headers()
                self.wfile.write(app.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def app() -> Iterator[_App]:
    served = _App()
    yield served
    served.server.shutdown()
    served.server.server_close()


def test_urls_bracket_ipv6_and_add_the_slash() -> None:
    assert HEALTH.health_url("::1", 8080, "health") == "http://[::1]:8080/health"
    assert HEALTH.health_url("[::1]", 80, "/h") == "http://[::1]:80/h"
    assert HEALTH.health_url("app", 8080, "/health") == "http://app:8080/health"


def test_answers_read_status_and_version(app: _App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy must never answer for the local app
    url = f"http://127.0.0.1:{app.port}/health"
    answer = HEALTH.ask(url)
    assert (answer.status, answer.version, answer.url) == (200, "1.0.0", url) and answer.is_version("1.0.0")
    assert answer.as_dict() == {"url": url, "status": 200, "version": "1.0.0", "error": ""}
    app.status, app.body = 500, json.dumps({"version": "1.0.0"}).encode()
    broken = HEALTH.ask(url)
    assert broken.status == 500 and not broken.is_version("1.0.0") and broken.describe() == 'status 500, version "1.0.0"'
    app.status, app.body = 200, b"<html>"
    assert HEALTH.ask(url).describe() == "status 200, version null (the answer is not JSON)"
    app.body = b'["1.0.0"]'
    assert HEALTH.ask(url).version is None


def test_no_answer_is_described_not_raised() -> None:
    answer = HEALTH.ask("http://127.0.0.1:9/health", timeout=1)
    assert answer.status is None and answer.describe().startswith("no answer (") and not answer.is_version("1.0.0")


def test_wait_until_sees_the_version_arrive_and_gives_up_at_the_deadline(app: _App) -> None:
    url = f"http://127.0.0.1:{app.port}/health"
    app.body = b'{"version": "0.9.0"}'
    threading.Timer(0.4, lambda: setattr(app, "body", b'{"version": "1.0.0"}')).start()
    asked: list[float] = []
    began = time.monotonic()
    assert HEALTH.wait_until(url, "1.0.0", 5, before_each=lambda: asked.append(time.monotonic())).is_version("1.0.0")
    assert 0.4 <= time.monotonic() - began < 3 and len(asked) >= 2
    began = time.monotonic()
    last = HEALTH.wait_until(url, "2.0.0", 1)
    assert last.version == "1.0.0" and 1 <= time.monotonic() - began < 3
