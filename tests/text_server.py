"""A loopback HTTP server for test fixtures that serve metrics text (exporter pages, dcgm-exporter).

`TextServer(page)` calls `page(path)` for each GET (query string dropped) and answers 200 with
its text, or 404 when it returns None; a `Reply(status, content_type, body)` answers exactly
that (an HTML error page, a 500). Runs in a daemon thread; `close()` stops it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

CONTENT_TYPE = "text/plain; version=0.0.4"


class Reply(NamedTuple):
    """A page answered with its own status and content type."""

    status: int
    content_type: str
    body: str


class TextServer:
    def __init__(self, page: Callable[[str], str | Reply | None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                text = page(self.path.split("?")[0])
                if text is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                reply = text if isinstance(text, Reply) else Reply(200, CONTENT_TYPE, text)
                body = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
