"""A local SMTP capture server (aiosmtpd on 127.0.0.1): stores each message as .eml + index.html.

Run: ea mail-capture --port 8025 --dir data/mail   (--port 0 picks a free port)
"""

from __future__ import annotations

import argparse
import email
import email.policy
import hashlib
import html
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Captured:
    """One stored message and the envelope recipients it was really delivered to."""

    path: Path
    message: EmailMessage
    envelope_to: list[str]


class CaptureHandler:
    """aiosmtpd handler: one .eml per Message-ID (a re-sent duplicate is accepted, not stored)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.duplicates = 0
        # Index rows kept in memory so each message costs O(1), not a re-read of the folder.
        self._rows = [_index_row(c, self.directory) for c in read_messages(self.directory)]
        self._seen = {p.stem.rsplit("-", 1)[-1] for p in self.directory.glob("*.eml")}

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        key = msg.get("Message-ID") or hashlib.sha256(raw).hexdigest()
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        with self._lock:
            if digest in self._seen:
                self.duplicates += 1
                return "250 OK (duplicate Message-ID, already stored)"
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            name = f"{len(self._seen) + 1:05d}-{stamp}-{digest}"
            rcpts = ", ".join(envelope.rcpt_tos)
            path = self.directory / f"{name}.eml"
            path.write_bytes(f"X-Envelope-To: {rcpts}\r\n".encode() + raw)
            body = msg.get_body(preferencelist=("html",))
            if body is not None:
                (self.directory / f"{name}.html").write_text(body.get_content(), "utf-8")
            self._seen.add(digest)
            self._rows.append(
                _index_row(Captured(path, msg, list(envelope.rcpt_tos)), self.directory)
            )
            write_index(self.directory, self._rows)
        return "250 Message accepted for delivery"


def read_messages(directory: Path) -> list[Captured]:
    """Every stored message, oldest first."""
    out = []
    for path in sorted(Path(directory).glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        rcpts = [r.strip() for r in (msg.get("X-Envelope-To") or "").split(",") if r.strip()]
        out.append(Captured(path, msg, rcpts))
    return out


def _index_row(c: Captured, directory: Path) -> str:
    stem = c.path.stem
    view = f'<a href="{stem}.html">view</a> · ' if (directory / f"{stem}.html").exists() else ""
    attachments = ", ".join(p.get_filename() or "" for p in c.message.iter_attachments())
    return (
        "<tr>"
        f"<td>{html.escape(c.message.get('Date', ''))}</td>"
        f"<td>{html.escape(', '.join(c.envelope_to))}</td>"
        f"<td>{html.escape(c.message.get('Subject', ''))}</td>"
        f"<td>{html.escape(attachments)}</td>"
        f'<td>{view}<a href="{c.path.name}">.eml</a></td>'
        "</tr>"
    )


def write_index(directory: Path, rows: list[str] | None = None) -> Path:
    """index.html listing every captured message, newest first, linking the HTML and .eml."""
    if rows is None:
        rows = [_index_row(c, directory) for c in read_messages(directory)]
    rows = list(reversed(rows))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Captured mail</title>"
        "<style>body{font-family:Inter,system-ui,sans-serif;margin:24px;color:#1f2933}"
        "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e4e7eb;"
        "padding:6px 8px;text-align:left;font-size:14px}th{color:#616e7c}"
        "h1{color:#005b9f;font-size:20px}</style></head><body>"
        f"<h1>Captured mail ({len(rows)})</h1><table><tr><th>Date</th><th>To</th>"
        "<th>Subject</th><th>Attachments</th><th></th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
    index = Path(directory) / "index.html"
    index.write_text(page, "utf-8")
    return index


class CaptureServer:
    """Start/stop the capture server in a background thread (tests, demo, bench)."""

    def __init__(
        self,
        directory: Path,
        port: int = 0,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        credentials: tuple[str, str] | None = None,
    ):
        """`tls` offers STARTTLS (or wraps the port when `implicit_tls`); `credentials` turns
        on AUTH and refuses mail without a login (to rehearse a real relay locally).
        """
        self.host = host
        self.port = port or free_port()
        self.directory = Path(directory)
        self.handler = CaptureHandler(self.directory)
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.credentials = credentials
        self._controller: Controller | None = None

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.credentials == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    def start(self) -> CaptureServer:
        kwargs: dict = {}
        if self.tls is not None and self.implicit_tls:
            kwargs["ssl_context"] = self.tls
        elif self.tls is not None:
            kwargs.update(tls_context=self.tls, require_starttls=True)
        if self.credentials is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            # With implicit TLS aiosmtpd cannot tell the socket is encrypted; it is.
            kwargs["auth_require_tls"] = self.tls is not None and not self.implicit_tls
        self._controller = Controller(
            self.handler, hostname=self.host, port=self.port, server_hostname="localhost", **kwargs
        )
        self._controller.start()
        write_index(self.directory, self.handler._rows)
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Captured]:
        return read_messages(self.directory)

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="ea mail-capture",
        description=__doc__.splitlines()[0],
        epilog="examples:\n"
        "  ea mail-capture                         # 127.0.0.1:8025, messages in data/mail/\n"
        "  ea mail-capture --port 2525 --dir /tmp/mail",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8025, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", default="data/mail", help="where .eml files and index.html go")
    args = parser.parse_args(argv)
    server = CaptureServer(Path(args.dir), port=args.port, host=args.host).start()
    print(
        f"SMTP capture listening on {server.host}:{server.port}; "
        f"open {Path(args.dir).resolve() / 'index.html'}",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
