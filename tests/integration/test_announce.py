"""Announcements reach a real SMTP server (aiosmtpd, STARTTLS and a login) and a local HTTP receiver, before and after
a real promotion on sshd hosts; a dead mail server is retried, recorded as failed, never fails the promotion, and
`announce` sends it again."""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relpromote.testing.sshd import SshHostFarm
from tests.helpers import make_app_source, make_project
from tests.integration.conftest import write_inventories
from tests.integration.test_promote import build, ledger_payloads, live_version

NET = os.environ.get("RELPROMOTE_TEST_NET", "127.0.77")
MAIL_HOST, HOOK_HOST = f"{NET}.250", f"{NET}.251"  # above the blocks the sshd hosts take
PASSWORD = "s3cret-smtp-password-0f9e"


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def self_signed(folder: Path, address: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relpromote test mail")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "mail.crt", folder / "mail.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"relpromote" and data.password == PASSWORD.encode()
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)


class MailServer:
    """A real SMTP server on loopback that requires STARTTLS and a login."""

    def __init__(self, folder: Path, port: int) -> None:
        self.cert, key = self_signed(folder, MAIL_HOST)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.cert, key)
        self.mailbox = Mailbox()
        self.port = port
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.mailbox, hostname=MAIL_HOST, port=self.port, tls_context=self.context, require_starttls=True,
                                     authenticator=self.mailbox.authenticate, auth_required=True)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class Hooks(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hooks.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[MailServer, str]]:
    mail = MailServer(tmp_path, free_port(MAIL_HOST))
    mail.start()
    Hooks.received = []
    server = ThreadingHTTPServer((HOOK_HOST, 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield mail, f"http://{HOOK_HOST}:{server.server_address[1]}/hooks/releases"
    finally:
        server.shutdown()
        mail.stop()


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in message.walk() if not part.is_multipart()}


def test_announcements_before_and_after_a_promotion_and_a_dead_mail_server(
    tmp_path: Path, farm: SshHostFarm, receivers: tuple[MailServer, str]
) -> None:
    mail, hook_url = receivers
    project = make_project(tmp_path / "proj")
    secret = tmp_path / "smtp.password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    token = tmp_path / "hook.token"
    token.write_text("hook-token-123\n")
    token.chmod(0o600)
    config_path = project.cwd / "relpromote.yml"
    config = yaml.safe_load(config_path.read_text())
    config["announce"] = {
        "attempts": 3, "backoff": 0.2,
        "automatic": {"environments": ["qa"]},
        "channels": [
            {"name": "ops-mail", "email": {"host": MAIL_HOST, "port": mail.port, "starttls": True, "cafile": str(mail.cert),
                                           "username": "relpromote", "password": {"file": str(secret)},
                                           "from": "releases@shop.test", "to": ["ops@shop.test", "users@shop.test"], "timeout": 5}},
            {"name": "chat", "webhook": {"url": hook_url, "shape": "slack", "token": {"file": str(token)}}},
        ],
    }
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    write_inventories(project, farm)
    source = make_app_source(tmp_path / "app")
    build(project, source, "1.0.0", "first")

    project.run("promote", "1.0.0", "--to", "qa", identity="oscar", check=True)
    assert live_version(farm, "qa-app-1") == "1.0.0"
    subjects = [m["Subject"] for m in mail.mailbox.messages]
    assert subjects == ["[shop] 1.0.0 is about to go to qa", "[shop] 1.0.0 is live in qa"], subjects
    after = mail.mailbox.messages[1]
    assert after["To"] == "ops@shop.test, users@shop.test" and mail.mailbox.logins == ["relpromote", "relpromote"]
    body = parts(after)
    assert set(body) == {"text/plain", "text/html"}
    assert "CH-1: A thing" in body["text/plain"] and "**Why:** Because" in body["text/plain"] and "promoted by oscar" in body["text/plain"]
    assert '<tr data-change="CH-1">' in body["text/html"] and "<td>Like so</td>" in body["text/html"]
    assert [h["body"]["text"] for h in Hooks.received] == subjects and all(h["auth"] == "Bearer hook-token-123" for h in Hooks.received)
    assert Hooks.received[0]["body"]["blocks"][0]["type"] == "header"  # Slack's shape
    recorded = ledger_payloads(project, "announcement.finished")
    assert [(r["stage"], r["result"], r["automatic"]) for r in recorded] == [("before", "sent", True), ("after", "sent", True)]

    # The mail server dies: the promotion still succeeds; the mail channel is retried, recorded as failed; the webhook is sent.
    mail.stop()
    build(project, source, "1.1.0", "second")
    result = project.run("promote", "1.1.0", "--to", "qa", identity="oscar")
    assert result.returncode == 0, result.stderr
    assert live_version(farm, "qa-app-1") == "1.1.0" and live_version(farm, "qa-app-2") == "1.1.0"
    recorded = ledger_payloads(project, "announcement.finished")[2:]
    assert [(r["stage"], r["result"]) for r in recorded] == [("before", "failed"), ("after", "failed")]
    for record in recorded:
        channels = {c["channel"]: c for c in record["channels"]}
        assert channels["ops-mail"]["result"] == "failed" and channels["ops-mail"]["attempts"] == 3
        assert "Connection refused" in channels["ops-mail"]["error"] or "ConnectionRefused" in channels["ops-mail"]["error"]
        assert channels["chat"]["result"] == "sent"
    assert len(mail.mailbox.messages) == 2 and len(Hooks.received) == 4
    promotions = ledger_payloads(project, "promotion.finished")
    assert promotions[-1]["version"] == "1.1.0" and promotions[-1]["result"] == "succeeded"

    # While it is down, `announce` fails (exit 1) and says so; once it is back, the same command sends it.
    again = project.run("--json", "announce", "1.1.0", "--env", "qa", "--channel", "ops-mail", identity="alice")
    assert again.returncode == 1 and json.loads(again.stdout)["channels"][0]["attempts"] == 3
    mail.start()
    resent = project.json("announce", "1.1.0", "--env", "qa", "--channel", "ops-mail", identity="alice")
    assert resent["result"] == "sent" and resent["stage"] == "after" and resent["automatic"] is False
    assert mail.mailbox.messages[-1]["Subject"] == "[shop] 1.1.0 is live in qa" and len(Hooks.received) == 4
    recorded_text = json.dumps(ledger_payloads(project, "announcement.finished"))
    assert PASSWORD not in recorded_text and "hook-token-123" not in recorded_text and PASSWORD not in config_path.read_text()
