"""Turn an outbox email payload into a MIME message and send it over SMTP (plain/STARTTLS/SSL)."""

from __future__ import annotations

import base64
import email.utils
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage

from notifications.outbox import DeliveryError, OutboxRow, PermanentDeliveryError, SendResult

SECURITY_MODES = ("plain", "starttls", "ssl")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send mail. `password` is used for login only; never logged."""

    host: str = "127.0.0.1"
    port: int = 8025
    # "" = the default: starttls when a user logs in (SMTP_USER set), else plain.
    security: str = ""
    user: str = ""
    password: str = ""
    mail_from: str = "Engagement Alerts <alerts@engagement-alerts.local>"
    timeout_seconds: float = 10.0
    ca_file: str = ""  # extra CA bundle, for a relay with a private certificate
    # Logging in over an unencrypted connection to a host other than this machine sends the
    # password in the clear: refused unless this is set (SMTP_ALLOW_PLAIN_LOGIN=true).
    allow_plain_login: bool = False

    def __post_init__(self):
        if not self.security:
            object.__setattr__(self, "security", "starttls" if self.user else "plain")
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"SMTP security {self.security!r} is not one of {SECURITY_MODES} "
                "(set SMTP_SECURITY)."
            )
        if (
            self.user
            and self.security == "plain"
            and not is_loopback(self.host)
            and not self.allow_plain_login
        ):
            raise ValueError(
                f"refusing to log in as {self.user!r} to {self.host}:{self.port} over an "
                "unencrypted connection (the password would travel in the clear): set "
                "SMTP_SECURITY=starttls or ssl, or SMTP_ALLOW_PLAIN_LOGIN=true if this relay "
                "is on a network you trust"
            )

    def __repr__(self) -> str:  # keep the password out of logs and tracebacks
        return (
            f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r}, "
            f"user={self.user!r}, password={'***' if self.password else ''!r})"
        )


def is_loopback(host: str) -> bool:
    """True for this machine (localhost, 127.0.0.0/8, ::1): no network between us."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def message_id_for(row: OutboxRow, mail_from: str) -> str:
    """A Message-ID fixed by the delivery, so a re-send after a crash is recognisably the same."""
    domain = email.utils.parseaddr(mail_from)[1].partition("@")[2] or "engagement-alerts.local"
    return f"<{row.delivery_id}@{domain}>"


def build_message(row: OutboxRow, mail_from: str) -> EmailMessage:
    """multipart/alternative (text + HTML, with inline images) plus attachments (.ics invites)."""
    p = row.payload
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = ", ".join(p["to"])
    if p.get("cc"):
        msg["Cc"] = ", ".join(p["cc"])
    msg["Subject"] = p.get("subject") or row.subject
    msg["Date"] = email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = message_id_for(row, mail_from)
    msg["X-EA-Delivery-Key"] = row.idempotency_key
    msg.set_content(p["text"], subtype="plain", charset="utf-8")
    msg.add_alternative(p["html"], subtype="html", charset="utf-8")
    # Inline images (the KPI chart): multipart/related next to the HTML, referenced as cid:<id>.
    for img in p.get("inline_images", []):
        maintype, _, subtype = img["content_type"].partition("/")
        msg.get_body(preferencelist=("html",)).add_related(
            base64.b64decode(img["content_b64"]),
            maintype=maintype,
            subtype=subtype,
            cid=f"<{img['cid']}>",
            filename=img.get("filename"),
            disposition="inline",
        )
    for att in p.get("attachments", []):
        maintype, _, rest = att["content_type"].partition("/")
        subtype = rest.split(";")[0].strip()
        params = dict(part.strip().split("=", 1) for part in rest.split(";")[1:] if "=" in part)
        params.pop("charset", None)
        msg.add_attachment(
            att["content"].encode("utf-8"),
            maintype=maintype,
            subtype=subtype,
            filename=att["filename"],
            params=params,
        )
    return msg


class SmtpSender:
    """Outbox sender for the "email" channel."""

    def __init__(self, config: SmtpConfig):
        self.config = config

    def __call__(self, row: OutboxRow) -> SendResult:
        c = self.config
        msg = build_message(row, c.mail_from)
        recipients = list(row.payload["to"]) + list(row.payload.get("cc", []))
        # Built only when used: loading the CA bundle costs ~0.1 s per message.
        tls = (
            ssl.create_default_context(cafile=c.ca_file or None) if c.security != "plain" else None
        )
        try:
            if c.security == "ssl":
                client = smtplib.SMTP_SSL(c.host, c.port, timeout=c.timeout_seconds, context=tls)
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_seconds)
            with client:
                if c.security == "starttls":
                    client.starttls(context=tls)
                if c.user:
                    client.login(c.user, c.password)
                refused = client.send_message(msg, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentDeliveryError(
                f"SMTP login failed ({exc.smtp_code}); check SMTP_USER/SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError(
                f"all recipients refused: {sorted(exc.recipients)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from None
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(
                f"cannot deliver via {c.host}:{c.port} ({type(exc).__name__}: {exc})"
            ) from None
        if refused:
            raise PermanentDeliveryError(f"recipients refused: {sorted(refused)}")
        return SendResult(external_id=msg["Message-ID"])
