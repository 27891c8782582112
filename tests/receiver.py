"""A local HTTP endpoint that keeps what is POSTed to it (alerts, telemetry), for tests."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    url: str
    paths: list[str] = field(default_factory=list)
    bodies: list[Any] = field(default_factory=list)  # JSON bodies, or None for others


@contextlib.contextmanager
def receiver(path: str = "/") -> Iterator[Received]:
    got = Received("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.paths.append(self.path)
            try:
                got.bodies.append(json.loads(raw))
            except ValueError:
                got.bodies.append(None)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
