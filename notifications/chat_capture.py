"""A local chat webhook capture for the demo (like the SMTP capture): it accepts Slack and Teams
incoming-webhook posts on 127.0.0.1 and appends each to <dir>/<channel>.jsonl with the time it
arrived. It answers as the services do on success ("ok" for Slack, "1" for Teams); the strict
contract servers that refuse what the services refuse live with the tests.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class ChatCapture:
    """Two webhook paths, /slack and /teams; `url(channel)` is what SLACK_/TEAMS_WEBHOOK_URL
    should be set to.
    """

    def __init__(self, directory: Path, host: str = "127.0.0.1"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server hook name)
                channel = self.path.strip("/").split("/")[0]
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if channel not in ("slack", "teams"):
                    status, body = 404, "no_service"
                else:
                    try:
                        message = json.loads(raw)
                    except ValueError:
                        status, body = 400, "invalid_payload"
                    else:
                        outer.store(channel, message)
                        status, body = 200, "ok" if channel == "slack" else "1"
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, channel: str) -> str:
        return f"http://{self.host}:{self.port}/{channel}"

    def store(self, channel: str, message: dict) -> None:
        received = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
        line = json.dumps({"received_at": received, "message": message})
        with self._lock, (self.directory / f"{channel}.jsonl").open("a") as f:
            f.write(line + "\n")

    def messages(self, channel: str) -> list[dict]:
        path = self.directory / f"{channel}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def start(self) -> ChatCapture:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
