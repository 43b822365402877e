"""A loopback HTTP server for test fixtures that serve metrics text (exporter pages, dcgm-exporter).

`TextServer(page)` calls `page(path)` for each GET (query string dropped) and answers 200 with
its text, or 404 when it returns None; a `Reply(status, content_type, body)` answers exactly
that (an HTML error page, a 500). Runs in a daemon thread (the project's own
`mlfootprint.web.Server`); `close()` stops it at once.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import NamedTuple
from wsgiref.types import StartResponse, WSGIEnvironment

from mlfootprint.web.server import Server, reply

CONTENT_TYPE = "text/plain; version=0.0.4"


class Reply(NamedTuple):
    """A page answered with its own status and content type."""

    status: int
    content_type: str
    body: str


class TextServer:
    def __init__(self, page: Callable[[str], str | Reply | None]) -> None:
        def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
            text = page(environ["PATH_INFO"])
            if text is None:
                return reply(start_response, "404 Not Found", b"")
            r = text if isinstance(text, Reply) else Reply(200, CONTENT_TYPE, text)
            return reply(start_response, f"{r.status} {HTTPStatus(r.status).phrase}", r.body.encode(), content_type=r.content_type)

        self.server = Server(app).start("text-server")

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.close()
