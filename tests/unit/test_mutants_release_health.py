"""roles/release_deploy/module_utils/release_health.py, pinned exactly (issue 18's mutation score): how the host-side
modules ask the application's health endpoint and read its answer, against real servers on loopback (one that answers
what the test sets, one that accepts and says nothing)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.unit.host_modules import load_util

HEALTH = load_util("roles/release_deploy/module_utils/release_health.py")
LIMIT = 65536  # what is read of an answer at most


class App:
    """A real HTTP server on loopback whose answer the test sets; records each request's Accept header and time."""

    def __init__(self) -> None:
        self.status, self.body = 200, b'{"version": "1.0.0"}'
        self.accepts: list[str | None] = []
        self.times: list[float] = []
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.accepts.append(self.headers.get("Accept"))
                app.times.append(time.monotonic())
                status, body = app.status, app.body
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()


@pytest.fixture
def app() -> Iterator[App]:
    served = App()
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def silent() -> Iterator[str]:
    """A server that accepts connections and never answers (each closed after 4 s): its URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)
            threading.Timer(4, connection.close).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    listener.close()
    for connection in held:
        connection.close()


def padded(document: dict[str, object], size: int) -> bytes:
    """`document` as JSON followed by spaces up to `size` bytes: still the same JSON."""
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


def test_an_answer_is_its_status_and_version_asked_for_as_json(app: App) -> None:
    answer = HEALTH.ask(app.url)
    assert (answer.status, answer.version, answer.error, answer.url) == (200, "1.0.0", None, app.url)
    assert answer.is_version("1.0.0") and not answer.is_version("1.0.1")
    assert answer.describe() == 'status 200, version "1.0.0"'
    assert answer.as_dict() == {"url": app.url, "status": 200, "version": "1.0.0", "error": ""}
    assert app.accepts == ["application/json"]


def test_an_error_status_is_read_like_an_answer_and_is_never_the_version(app: App) -> None:
    app.status, app.body = 503, b'{"version": "1.0.0"}'
    answer = HEALTH.ask(app.url)
    assert (answer.status, answer.version, answer.error) == (503, "1.0.0", None)
    assert not answer.is_version("1.0.0") and answer.describe() == 'status 503, version "1.0.0"'
    app.status = 201
    assert not HEALTH.ask(app.url).is_version("1.0.0"), "only 200 is healthy"


def test_an_answer_that_is_not_json_is_named(app: App) -> None:
    app.body = b"<html>up</html>"
    answer = HEALTH.ask(app.url)
    assert answer.describe() == "status 200, version null (the answer is not JSON)"
    assert answer.as_dict() == {"url": app.url, "status": 200, "version": None, "error": "the answer is not JSON"}
    app.status = 500
    assert HEALTH.ask(app.url).describe() == "status 500, version null (the answer is not JSON)"
    app.status, app.body = 200, b'["1.0.0"]'
    assert HEALTH.ask(app.url).describe() == "status 200, version null", "JSON that is not an object has no version"
    app.body = '{"version": "1.0.0"}'.encode("utf-16")
    assert HEALTH.ask(app.url).describe() == "status 200, version null (the answer is not JSON)", "not UTF-8"


def test_at_most_64_kib_of_an_answer_is_read(app: App) -> None:
    # The first 64 KiB are a whole JSON document; what follows would break it if it were read.
    app.body = padded({"version": "1.0.0"}, LIMIT) + b"garbage"
    assert HEALTH.ask(app.url).describe() == 'status 200, version "1.0.0"'
    app.status = 500
    assert HEALTH.ask(app.url).describe() == 'status 500, version "1.0.0"'


def test_no_answer_is_described_with_its_reason_never_raised() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}/health"
    closed.close()
    answer = HEALTH.ask(url, timeout=1)
    assert (answer.status, answer.version, answer.url) == (None, None, url)
    assert answer.describe() == "no answer ([Errno 111] Connection refused)" and not answer.is_version(None)
    assert answer.as_dict() == {"url": url, "status": None, "version": None, "error": "[Errno 111] Connection refused"}
    assert HEALTH.ask("http://[::1/health").describe() == "no answer (Invalid IPv6 URL)"


def test_an_application_that_never_answers_is_given_up_after_the_timeout(silent: str) -> None:
    began = time.monotonic()
    answer = HEALTH.ask(silent, timeout=0.3)
    assert answer.describe() == "no answer (timed out)" and time.monotonic() - began < 3


def test_a_health_check_never_goes_through_a_proxy(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert HEALTH.ask(app.url).describe() == 'status 200, version "1.0.0"'


def test_an_answer_made_without_a_status_is_no_answer() -> None:
    assert HEALTH.Answer(error="gone").describe() == "no answer (gone)"
    assert HEALTH.Answer().as_dict() == {"url": "", "status": None, "version": None, "error": ""}
    assert HEALTH.Answer(status=200, version=None).describe() == "status 200, version null"


def test_waiting_asks_again_until_the_version_answers(app: App) -> None:
    app.body = b'{"version": "0.9.0"}'
    threading.Timer(0.6, lambda: setattr(app, "body", b'{"version": "1.0.0"}')).start()
    before: list[float] = []
    began = time.monotonic()
    answer = HEALTH.wait_until(app.url, "1.0.0", 10, before_each=lambda: before.append(time.monotonic()))
    took = time.monotonic() - began
    assert answer.describe() == 'status 200, version "1.0.0"' and 0.6 <= took < 3
    assert len(before) == len(app.times), "before_each runs before every ask"
    # Pauses of 0.05 s growing to 0.1 s: about a dozen asks in 0.6 s, never a busy loop, never a long sleep.
    assert 4 <= len(app.times) <= 20, app.times
    gaps = [later - earlier for earlier, later in zip(app.times, app.times[1:], strict=False)]
    assert all(gap < 0.5 for gap in gaps), gaps


def test_waiting_gives_up_at_the_deadline_with_the_last_answer(app: App) -> None:
    app.body = b'{"version": "0.9.0"}'
    began = time.monotonic()
    answer = HEALTH.wait_until(app.url, "1.0.0", 1)
    took = time.monotonic() - began
    assert answer.describe() == 'status 200, version "0.9.0"' and 1 <= took < 2.5


def test_waiting_still_asks_in_the_last_second(app: App) -> None:
    # The version arrives with less than a second left: it is still seen.
    app.body = b'{"version": "0.9.0"}'
    threading.Timer(2.3, lambda: setattr(app, "body", b'{"version": "1.0.0"}')).start()
    answer = HEALTH.wait_until(app.url, "1.0.0", 3)
    assert answer.describe() == 'status 200, version "1.0.0"'


def test_each_ask_while_waiting_is_bounded_by_what_is_left_but_at_least_half_a_second(silent: str) -> None:
    began = time.monotonic()
    answer = HEALTH.wait_until(silent, "1.0.0", 0.2)
    took = time.monotonic() - began
    assert answer.describe() == "no answer (timed out)" and 0.45 <= took < 1.4, took
