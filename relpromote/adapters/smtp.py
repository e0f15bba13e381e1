"""Sending one announcement by mail: a text and an HTML part, over SMTP with STARTTLS or TLS and a login when configured."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from relpromote.announce import EmailChannel, Message


def build_email(channel: EmailChannel, message: Message) -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = channel.sender
    mail["To"] = ", ".join(channel.to)
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain="relpromote.invalid")
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


def send_email(channel: EmailChannel, message: Message, password: str | None) -> None:
    context = ssl.create_default_context(cafile=channel.cafile) if (channel.starttls or channel.tls) else None
    client: smtplib.SMTP
    if channel.tls:
        client = smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout, context=context)
    else:
        client = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
    with client:
        client.ehlo()
        if channel.starttls:
            client.starttls(context=context)
            client.ehlo()
        if channel.username is not None and password is not None:
            client.login(channel.username, password)
        client.send_message(build_email(channel, message))
