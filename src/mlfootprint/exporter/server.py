"""HTTP endpoints: ``/metrics`` (Prometheus text) and ``/healthz``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry


def make_server(
    address: str,
    port: int,
    registry: CollectorRegistry,
    healthy: Callable[[], bool],
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, status, ctype = generate_latest(registry), 200, CONTENT_TYPE_LATEST
            elif path == "/healthz":
                ok = healthy()
                body, status, ctype = (b"ok\n" if ok else b"stale\n"), (200 if ok else 503), "text/plain"
            else:
                body, status, ctype = b"see /metrics\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet access log
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    # a short poll: shutdown() waits for it, and the kubelet's SIGTERM should end us in well under 2 s
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="metrics-http", daemon=True)
    thread.start()
    return thread


def freshness_check(last_cycle: Callable[[], float], max_age_s: float) -> Callable[[], bool]:
    """Healthy while the monitor published a snapshot within ``max_age_s`` (real seconds)."""

    def healthy() -> bool:
        return time.monotonic() - last_cycle() <= max_age_s

    return healthy
