"""The HTTP server of the exporter, the operator's metrics and the demo's simulators.

``/metrics`` is prometheus_client's own WSGI app (OpenMetrics when the scraper asks for it in
``Accept``, gzip when it accepts it, ``?name[]=`` filtering); :func:`metrics_app` adds
``/healthz``. :class:`Server` is prometheus_client's server (wsgiref, a thread per connection,
no access log) with three differences: the web config (TLS, basic auth) is applied per
connection and request, so it can be reloaded; the TLS handshake runs in the connection's
thread, so a client that stalls cannot hold up the others; and :meth:`Server.shutdown`
returns at once (socketserver's loop polls for it every 0.5 s).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app
from prometheus_client.registry import Collector

from mlfootprint.web.config import WebConfigFile

__all__ = ["PUBLIC_PATHS", "Server", "healthz", "metrics_app", "reply", "serve"]

log = logging.getLogger(__name__)

#: paths served without credentials or client certificate (Kubernetes probes present neither)
PUBLIC_PATHS = frozenset({"/healthz"})
HANDSHAKE_TIMEOUT_S = 10.0
#: a connection that sends nothing for this long is closed (no thread held forever)
REQUEST_TIMEOUT_S = 30.0
_CLIENT_CERT = "mlfootprint.client_cert"
_PLAIN_HTTP_REPLY = (
    b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
    b"Client sent an HTTP request to an HTTPS server.\n"
)


def reply(start_response: StartResponse, status: str, body: bytes, headers: Iterable[tuple[str, str]] = (),
          content_type: str = "text/plain; charset=utf-8") -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]


def healthz(healthy: Callable[[], bool]) -> WSGIApplication:
    """200 ``ok`` while ``healthy()``, else 503 ``stale``."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        ok = healthy()
        return reply(start_response, "200 OK" if ok else "503 Service Unavailable", b"ok\n" if ok else b"stale\n")

    return app


def metrics_app(registry: Collector, healthy: Callable[[], bool] = lambda: True) -> WSGIApplication:
    """``/metrics`` (prometheus_client's app), ``/healthz``, and 404 elsewhere."""
    routes = {"/metrics": make_wsgi_app(registry), "/healthz": healthz(healthy)}

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        route = routes.get(environ.get("PATH_INFO", ""))
        if route is None:
            return reply(start_response, "404 Not Found", b"see /metrics\n")
        return route(environ, start_response)

    return app


def _guarded(app: WSGIApplication, web: WebConfigFile) -> WSGIApplication:
    """Client certificate and basic auth, as the web config currently says, on every path
    but the public ones."""

    def guarded(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") not in PUBLIC_PATHS:
            active = web.current()
            if active.client_cert_required and not environ.get(_CLIENT_CERT):
                return reply(start_response, "403 Forbidden", b"a client certificate is required\n")
            if active.auth is not None and not active.auth.allows(environ.get("HTTP_AUTHORIZATION")):
                return reply(start_response, "401 Unauthorized", b"Unauthorized\n",
                             [("WWW-Authenticate", 'Basic realm="mlfootprint", charset="UTF-8"')])
        return app(environ, start_response)

    return guarded


class _Handler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_S

    def get_environ(self) -> WSGIEnvironment:
        env = super().get_environ()
        if isinstance(self.connection, ssl.SSLSocket):
            env["HTTPS"] = "on"
            env[_CLIENT_CERT] = bool(self.connection.getpeercert())
        return env

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
        pass


def _address_family(address: str, port: int) -> socket.AddressFamily:
    family, *_ = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return family


class Server(ThreadingMixIn, WSGIServer):
    """A WSGI app served on ``address:port`` (port 0: a free one, see :attr:`port`)."""

    daemon_threads = True
    #: handle_request() is called once the socket is readable: it must not wait again
    timeout = 0.0

    def __init__(self, app: WSGIApplication, address: str = "127.0.0.1", port: int = 0,
                 web_config: WebConfigFile | None = None) -> None:
        self.address_family = _address_family(address, port)
        # before the bind: a failed bind calls server_close(), which closes these (and without
        # them hid "Address already in use" behind an AttributeError)
        self._wake_r, self._wake_w = socket.socketpair()
        super().__init__((address, port), _Handler)
        self.web_config = web_config
        self.set_app(_guarded(app, web_config) if web_config is not None else app)
        self._stopped = threading.Event()
        self._stopped.set()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self, name: str = "http") -> Server:
        """Serve in a daemon thread."""
        threading.Thread(target=self.serve_forever, name=name, daemon=True).start()
        return self

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`shutdown`, which wakes this loop at once (``poll_interval`` is
        accepted for compatibility and unused: nothing polls)."""
        self._stopped.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while True:
                    ready = [key.fileobj for key, _ in selector.select()]
                    if self._wake_r in ready:
                        self._wake_r.recv(1)
                        return
                    self.handle_request()
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop :meth:`serve_forever` and wait for it (at once: a byte on a socket wakes it)."""
        try:
            self._wake_w.send(b"\0")
        except OSError:  # already closed: nothing is serving
            return
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self.web_config.current().tls if self.web_config is not None else None
        if tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        first = request.recv(1, socket.MSG_PEEK)
        if first != b"\x16":  # not a TLS handshake record
            if first.isalpha():  # a plain HTTP request line: say so, as Go's servers do
                request.sendall(_PLAIN_HTTP_REPLY)
            return
        with tls.wrap_socket(request, server_side=True) as conn:
            super().finish_request(conn, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # failed handshakes, resets and timeouts of one connection: nothing the server can fix
        # socketserver calls this from its `except Exception:` block, so exc_info is the failure
        log.debug("connection failed", exc_info=True, extra={"client": str(client_address[0])})  # noqa: LOG014


def serve(app: WSGIApplication, address: str, port: int, web_config_file: Path | None = None,
          name: str = "http") -> Server:
    """Start serving ``app`` in a daemon thread; raises OSError (cannot listen) or
    WebConfigError (the web config file is invalid) before anything is served."""
    web = WebConfigFile(web_config_file) if web_config_file is not None else None
    return Server(app, address, port, web).start(name)
