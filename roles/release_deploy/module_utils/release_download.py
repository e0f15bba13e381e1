"""Read a release artifact from an artifact server on the host, hashing it as it arrives.

The host's own Python reads the artifact (urllib, standard library only) once, as a stream: release_unpack hands the
stream to its one unpacker (the same member checks as for an upload), which extracts into the release's private
`.partial` folder while every byte passes through sha256 here; the folder is renamed into place only when the whole
artifact was read and its sha256 is the one the ledger recorded. Nothing is written to disk before the unpacker, and
nothing is read twice. A download that differs leaves nothing behind. A fleet then downloads in parallel from the
server instead of through the controller's SSH connections. Shipped with release_unpack.

HTTPS: the server's certificate is checked against the host's system CA store, or against `ca_file` (a PEM file on
the host, the role's release_artifact_ca_file) when one is given; a CA file anyone on the host may write is refused
(anyone could add a CA to it). A download that began over https stays on https: a redirect to http:// (or to any
other scheme) is refused, naming where it led, before anything is asked there (urllib follows it by default, and the
artifact would then travel in clear text). A redirect to another https server is followed, its certificate checked
against the same CA file; whatever server answers, the bytes count only when their sha256 is the ledger's.
"""

import hashlib
import os
import re
import ssl
import stat
from http.client import HTTPException
from urllib.error import URLError
from urllib.parse import urlsplit
from urllib.request import HTTPRedirectHandler, HTTPSHandler, build_opener

# Read from the socket at a time: large enough that Python's per-call cost is nothing against the bytes (sha256 and
# gunzip run over whole blocks), small enough to stay in the CPU's caches between the socket, the hash and zlib.
CHUNK = 1 << 18


class Refused(Exception):
    """The download failed or is not the artifact the ledger recorded; `actual` is its sha256 when it was read whole."""

    def __init__(self, message, actual=None):
        super().__init__(message)
        self.actual = actual


def shown(url):
    """The URL as messages show it: without a user name or password (secrets never in logs)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def artifact_url(server, digest):
    """Where a server that serves the store's layout holds the artifact of `digest`."""
    return f"{server.rstrip('/')}/sha256/{digest}.tar.gz"


def _reason(exc):
    """What went wrong, as one line: `HTTP Error 404: Not Found`, the SSL or socket error."""
    said = exc if getattr(exc, "code", None) else getattr(exc, "reason", None) or exc
    return " ".join(str(said).split()) or type(exc).__name__


class _StayOnHttps(HTTPRedirectHandler):
    """Follows a redirect only when it keeps the scheme's protection: from https, only to https; from http, to http(s)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urlsplit(newurl).scheme.lower()
        allowed = ("https",) if urlsplit(req.full_url).scheme.lower() == "https" else ("http", "https")
        if scheme not in allowed:
            raise URLError(f"the server redirected to {shown(newurl)}, which is not {' or '.join(s + '://' for s in allowed)}: refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _ca_context(url, ca_file):
    """The TLS context checking the server against `ca_file` (else the system's CA store); Refused when the CA file
    cannot be used or anyone on the host may change it."""
    try:
        if ca_file and os.stat(ca_file).st_mode & stat.S_IWOTH:  # the file a link leads to
            raise Refused(f"could not download the artifact from {shown(url)}: the CA file {ca_file} is writable by "
                          "everyone on the host (anyone could add a CA to it); make it 0644")
        return ssl.create_default_context(cafile=ca_file or None)
    except OSError as exc:  # ssl.SSLError too
        raise Refused(f"could not download the artifact from {shown(url)}: the CA file {ca_file} cannot be used: "
                      f"{_reason(exc)}") from None


class Download:
    """The artifact at `url`, being read: read() hands its bytes on and hashes them as they pass, finish() reads what the
    reader left (a tar's last padding, the gzip trailer) and says the sha256 of the whole. Raises Refused saying what
    went wrong when the server cannot be reached or the transfer breaks."""

    def __init__(self, url, timeout=60, ca_file=None):
        if not url.startswith(("http://", "https://")):
            raise Refused(f"artifact URL {shown(url)} is not http:// or https://")
        self.url = url
        self.size = 0
        self._hasher = hashlib.sha256()
        self._answer = None
        context = _ca_context(url, ca_file) if url.startswith("https://") else None
        handlers = [_StayOnHttps()] + ([HTTPSHandler(context=context)] if context is not None else [])
        try:
            self._answer = build_opener(*handlers).open(url, timeout=timeout)
        except (URLError, HTTPException, OSError, ValueError) as exc:
            raise self._broken(exc) from None

    def _broken(self, exc):
        return Refused(f"could not download the artifact from {shown(self.url)}: {_reason(exc)}")

    def read(self, size=CHUNK):
        """Up to `size` bytes of the artifact, b"" at its end."""
        try:
            block = self._answer.read(size if size and size > 0 else CHUNK)
        except (HTTPException, OSError, ValueError) as exc:
            raise self._broken(exc) from None
        self._hasher.update(block)
        self.size += len(block)
        return block

    def finish(self):
        """The sha256 of the whole artifact, once what is left of it was read."""
        while self.read(CHUNK):
            pass
        return self._hasher.hexdigest()

    def refusal(self, digest):
        """Refused for an artifact read whole whose sha256 is not `digest` (None when it is)."""
        actual = self.finish()
        if actual == digest:
            return None
        return Refused(
            f"the artifact downloaded from {shown(self.url)} has sha256 {actual}, expected {digest}; refused it "
            "(what it unpacked was removed)", actual)

    def close(self):
        if self._answer is not None:
            self._answer.close()
            self._answer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
