"""MailSender over SMTP (aiosmtplib): one connection per message, which suits a notifier's rate.

`tls`: "starttls" (upgrade a plain connection, usually port 587), "tls" (implicit TLS, usually
465) or "none" (a local relay or a test server). The password is never logged nor shown by repr.
"""

from __future__ import annotations

from email.message import Message

import aiosmtplib
import msgspec

TLS_MODES = ("none", "starttls", "tls")


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int = 587
    username: str = ""
    password: str = ""
    tls: str = "starttls"
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"SMTP tls must be one of {', '.join(TLS_MODES)}, not {self.tls!r}")

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port}, tls={self.tls!r})"


class SmtpMailSender:
    """Hands each message to an SMTP server. The key becomes nothing here: the Message-ID the
    caller set is what lets a receiving system recognise a duplicate."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    async def __aenter__(self) -> SmtpMailSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass

    async def send(self, message: Message, *, key: str) -> None:
        config = self.config
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            use_tls=config.tls == "tls",
            start_tls=config.tls == "starttls",
            timeout=config.timeout_s,
        )
