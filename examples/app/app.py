#!/usr/bin/env python3
"""A tiny HTTP service to release: /health answers the version of the release it runs from.

Run as: app.py --host ADDR --port PORT. The version comes from the release's own .release/VERSION,
so what answers is exactly what was unpacked.
"""

import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


def release_version() -> str:
    marker = HERE / ".release" / "VERSION"
    return marker.read_text().strip() if marker.exists() else "unreleased"


def broken() -> bool:
    """Fault injection for demos and tests: a BROKEN file in the release, or BROKEN-<version> in the
    base dir (releases/<version>/../..) of one host, makes this version fail its health check."""
    return (HERE / "BROKEN").exists() or (HERE.parent.parent / f"BROKEN-{VERSION}").exists()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/health":
            body = {"status": "ok", "version": VERSION, "pid": os.getpid()}
            if broken():
                self.send_response(500)
                body["status"] = "broken"
            else:
                self.send_response(200)
        else:
            self.send_response(200)
            body = {"app": "shop", "version": VERSION, "greeting": (HERE / "greeting.txt").read_text().strip()}
        data = json.dumps(body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


VERSION = release_version()

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    options = parser.parse_args()
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer((options.host, options.port), Handler).serve_forever()
