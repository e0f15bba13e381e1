# -*- coding: utf-8 -*-
"""Asking the application's health endpoint on this host, once or until it answers a version.

Shared by release_finish, release_verify (role release_deploy) and release_rollback (role
release_rollback, through a symlink): one way to build the URL, one way to ask, one reading of
the answer. Python 2.7-compatible syntax is not needed: the roles require Python 3 on the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time
from http.client import HTTPException
from urllib.error import HTTPError, URLError
from urllib.request import ProxyHandler, Request, build_opener

PROBE_TIMEOUT = 5.0
# Between asks of a starting application: short, because every pause is time a rollback or a promotion waits
# after the application is up (a refused connection costs the host next to nothing).
FIRST_PAUSE = 0.05
LONGEST_PAUSE = 0.1
# The application runs on this very host: a proxy from the environment (http_proxy) must never
# answer in its place.
DIRECT = build_opener(ProxyHandler({}))


def health_url(host, port, path):
    if ":" in host and not host.startswith("["):
        host = "[%s]" % host
    return "http://%s:%d%s" % (host, port, path if path.startswith("/") else "/" + path)


class Answer:
    """What the health endpoint said: an HTTP status and a version, or why there was no answer."""

    def __init__(self, status=None, version=None, error=None, url=""):
        self.status = status
        self.version = version
        self.error = error
        self.url = url

    def is_version(self, version):
        return self.status == 200 and self.version == version

    def describe(self):
        if self.status is None:
            return "no answer (%s)" % self.error
        note = " (%s)" % self.error if self.error else ""
        return "status %d, version %s%s" % (self.status, json.dumps(self.version), note)

    def as_dict(self):
        """{url, status, version, error}; status None when nothing answered."""
        return {"url": self.url, "status": self.status, "version": self.version, "error": self.error or ""}


def ask(url, timeout=PROBE_TIMEOUT):
    """One GET of `url`: the Answer (never raises for what the network or the application does)."""
    try:
        response = DIRECT.open(Request(url, headers={"Accept": "application/json"}), timeout=timeout)
        try:
            status, body = response.getcode(), response.read(65536)
        finally:
            response.close()
    except HTTPError as exc:
        status, body = exc.code, exc.read(65536)
    except (URLError, OSError, HTTPException, ValueError) as exc:
        return Answer(error=str(getattr(exc, "reason", exc)), url=url)
    try:
        document = json.loads(body.decode("utf-8"))
    except ValueError:
        return Answer(status=status, error="the answer is not JSON", url=url)
    version = document.get("version") if isinstance(document, dict) else None
    return Answer(status=status, version=version, url=url)


def wait_until(url, version, timeout, before_each=None):
    """Ask `url` until it answers 200 with `version` or `timeout` seconds have passed; the last Answer.
    `before_each` runs before every ask (e.g. to stop once the controller is gone)."""
    deadline = time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        if before_each is not None:
            before_each()
        answer = ask(url, max(0.5, min(PROBE_TIMEOUT, deadline - time.monotonic())))
        remaining = deadline - time.monotonic()
        if answer.is_version(version) or remaining <= 0:
            return answer
        time.sleep(min(pause, remaining))
        pause = min(pause * 1.5, LONGEST_PAUSE)
