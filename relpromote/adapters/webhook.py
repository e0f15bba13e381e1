"""Sending one announcement to a webhook: a JSON POST; any answer but 2xx is a failure."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def post_json(url: str, body: dict[str, Any], timeout: float, token: str | None = None) -> int:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "relpromote"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # the URL is the config's own
        status = int(response.status)
    if not 200 <= status < 300:
        raise RuntimeError(f"the webhook answered HTTP {status}")
    return status
