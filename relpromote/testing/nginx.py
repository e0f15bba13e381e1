"""A real nginx on loopback serving a folder: the artifact server of tests and benchmarks that pull artifacts.

This module owns the whole life of one nginx (the distribution's package, /usr/sbin/nginx): its configuration,
prefix, temp folders, pid and logs under the caller's workdir, the process (started in the foreground, so the
caller's process owns it), and its stop. It does not own the served folder's content: publish artifacts the way a
user does, by copying the store's `sha256/` folder into `root` (`server.publish(store)`), or with `uploads=True` by an
HTTP PUT (`server.upload(artifact, path)`, what `curl -T` does).

    with NginxServer(tmp_path / "nginx", root=tmp_path / "served", address="127.0.77.250") as server:
        server.publish(project_dir / ".relpromote" / "store")
        config["environments"]["qa"]["artifacts"] = {"transfer": "pull", "url": server.url}

As root, the workers run as root too (`user root`): the served folder lies under the test's private tmp folder,
which the distribution's `www-data` cannot read.

HTTPS: give `tls=` a certificate and its key (PEM files); `make_certificates()` makes a private CA and a server
certificate for an IP address signed by it, as an organisation's own CA would (the `cryptography` package):

    pki = make_certificates(tmp_path / "pki", "127.0.77.250")
    with NginxServer(tmp_path / "nginx", root=served, address="127.0.77.250", tls=pki) as server:
        ...  # server.url is https://127.0.77.250:PORT; clients check it against pki.ca
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

NGINX = "/usr/sbin/nginx"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

_CONFIG = """\
daemon off;
master_process on;
worker_processes {workers};
{user}
pid {state}/nginx.pid;
error_log {state}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {state}/access.log;
    client_body_temp_path {state}/client_body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    types {{ application/gzip gz; }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    server {{
        listen {address}:{port}{ssl};
        {certificate}
        root {root};
        autoindex off;
        location / {{
            {uploads}
        }}
    }}
}}
"""


# What docs/fleet.md's nginx snippet gives the build machine: PUT stores a file, folders made as needed.
UPLOADS = "dav_methods PUT; create_full_put_path on; dav_access user:rw group:r all:r;"


class NginxError(RuntimeError):
    """nginx could not be started."""


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, PEM files."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    """A private CA (`ca`: the file clients are given to check servers against) and a server's key pair it signed."""

    ca: Path
    server: KeyPair


def make_certificates(folder: Path, address: str, days: int = 2) -> Certificates:
    """A new CA and a certificate for the IP `address` signed by it, in `folder` (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    later = now + datetime.timedelta(days=days)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("relpromote test CA")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (x509.CertificateBuilder().subject_name(name(address)).issuer_name(ca_name).public_key(server_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(later)
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file = folder / "server.key"
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    key_file.chmod(0o600)
    return Certificates(folder / "ca.pem", KeyPair(folder / "server.pem", key_file))


class NginxServer:
    """One nginx serving `root` on http://address:port/ (a free port when none is given)."""

    def __init__(
        self, workdir: Path, root: Path, address: str = "127.0.0.1", port: int | None = None, workers: int = 2, uploads: bool = False,
        tls: Certificates | None = None,
    ) -> None:
        self.workdir = workdir
        self.tls = tls  # HTTPS with tls.server, a certificate its CA (tls.ca) signed
        self.uploads = uploads  # HTTP PUT stores a file (nginx's dav module), as docs/fleet.md configures for a build machine
        self.root = root
        self.address = address
        self.port = port or _free_port(address)
        self.workers = workers
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"

    def __enter__(self) -> NginxServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def publish(self, store: Path, into: str = "") -> None:
        """Copy a store's artifacts (`store/sha256/*.tar.gz`) into the served folder (under `into`), as a user publishes."""
        target = self.root / into / "sha256"
        target.mkdir(parents=True, exist_ok=True)
        for artifact in sorted((store / "sha256").glob("*.tar.gz")):
            shutil.copyfile(artifact, target / artifact.name)
            os.chmod(target / artifact.name, 0o644)

    def upload(self, artifact: Path, path: str) -> int:
        """PUT `artifact` at `path` (e.g. "/sha256/<digest>.tar.gz"), as `curl -T` does; the HTTP status."""
        request = urllib.request.Request(f"{self.url}/{path.lstrip('/')}", data=artifact.read_bytes(), method="PUT")
        context = ssl.create_default_context(cafile=str(self.tls.ca)) if self.tls else None
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            status: int = answer.status
            return status

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if not Path(NGINX).exists():
            raise NginxError(f"{NGINX} is missing: install nginx (scripts/bootstrap.sh --system)")
        state = self.workdir.resolve()
        state.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        config = state / "nginx.conf"
        config.write_text(_CONFIG.format(
            workers=self.workers, user="user root;" if os.geteuid() == 0 else "", state=state, address=self.address,
            port=self.port, root=self.root.resolve(), uploads=UPLOADS if self.uploads else "try_files $uri =404;",
            ssl=" ssl" if self.tls else "",
            certificate=(f"ssl_certificate {self.tls.server.certificate.resolve()}; "
                         f"ssl_certificate_key {self.tls.server.key.resolve()};" if self.tls else ""),
        ))
        log = (state / "stderr.log").open("ab")
        try:
            self._proc = subprocess.Popen([NGINX, "-p", str(state), "-c", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not _accepts(self.address, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                said = "\n".join(_tail(state / name) for name in ("stderr.log", "error.log"))
                self.stop()
                raise NginxError(f"nginx on {self.address}:{self.port} did not start: {said.strip() or '(no output)'}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop nginx (a fast shutdown of the master and its workers). Safe to call more than once."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # its own session: the master and its workers
            proc.wait()


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""
