# -*- coding: utf-8 -*-
"""Pull a release artifact from an artifact server onto the host, its sha256 checked before anything uses it.

The host's own Python downloads the artifact (urllib, standard library only) into a private folder of the staging
directory, hashing it on the way, and renames it to its final name only once the whole file is there and its sha256
is the one the ledger recorded; a download that differs is removed and never unpacked. A fleet then downloads in
parallel from the server instead of through the controller's SSH connections. Shipped with release_unpack.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import shutil
import tempfile

try:  # Python 3 on every supported host; the import is guarded only so that the module's documentation loads anywhere
    from urllib.request import urlopen
    from urllib.error import URLError
except ImportError:  # pragma: no cover
    urlopen = None
    URLError = OSError

CHUNK = 1 << 20
# Where a download lands until it is verified: a folder whose name the leftovers pass of release_unpack's action plugin
# removes when a run was cut off mid-download (ansible-tmp-*).
PREFIX = "ansible-tmp-pull-"


class Refused(Exception):
    """The download failed or is not the artifact the ledger recorded; `actual` is its sha256 when it was read whole."""

    def __init__(self, message, actual=None):
        super(Refused, self).__init__(message)
        self.actual = actual


def shown(url):
    """The URL as messages show it: without a user name or password (secrets never in logs)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def artifact_url(server, digest):
    """Where a server that serves the store's layout holds the artifact of `digest`."""
    return "%s/sha256/%s.tar.gz" % (server.rstrip("/"), digest)


def download(url, staging, digest, timeout=60):
    """(folder, path): the artifact at `url` in a new private folder under `staging`, its sha256 checked against
    `digest`; the caller removes the folder. Raises Refused (nothing left behind) when it cannot be fetched or differs."""
    if not url.startswith(("http://", "https://")):
        raise Refused("artifact URL %s is not http:// or https://" % shown(url))
    folder = tempfile.mkdtemp(prefix=PREFIX, dir=staging)
    try:
        partial = os.path.join(folder, "partial")
        hasher = hashlib.sha256()
        try:
            answer = urlopen(url, timeout=timeout)
            try:
                with open(partial, "wb") as target:
                    while True:
                        block = answer.read(CHUNK)
                        if not block:
                            break
                        hasher.update(block)
                        target.write(block)
                    target.flush()
                    os.fsync(target.fileno())
            finally:
                answer.close()
        except (URLError, OSError, ValueError) as exc:
            said = exc if getattr(exc, "code", None) else getattr(exc, "reason", None) or exc  # HTTP Error 404: Not Found
            raise Refused("could not download the artifact from %s: %s" % (shown(url), said))
        actual = hasher.hexdigest()
        if actual != digest:
            raise Refused(
                "the artifact downloaded from %s has sha256 %s, expected %s; refused it (the download was removed)"
                % (shown(url), actual, digest), actual)
        final = os.path.join(folder, digest + ".tar.gz")
        os.rename(partial, final)
        return folder, final
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
