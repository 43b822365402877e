"""The shared HTTP server over real sockets: prometheus_client's /metrics (OpenMetrics
negotiation, gzip, name filter), /healthz, and the web config's real TLS (openssl-made
certificates) and real bcrypt basic auth."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mlfootprint.web.config import WebConfigFile
from mlfootprint.web.server import Server, metrics_app
from tests.pki import PASSWORD, Pki

Response = tuple[int, dict[str, str], bytes]


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_energy_joules", "Energy.", registry=registry).inc(42)
    Gauge("demo_power_watts", "Power.", registry=registry).set(7)
    return registry


def get(server: Server, path: str, *, tls: ssl.SSLContext | None = None, user: str | None = None,
        password: str = PASSWORD, headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> Response:
    conn: http.client.HTTPConnection
    if tls is None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout_s)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=timeout_s, context=tls)
    sent = dict(headers or {})
    if user is not None:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    try:
        conn.request("GET", path, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def client_tls(pki: Pki, cert: tuple[Path, Path] | None = None, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki.ca)
    if cert is not None:
        ctx.load_cert_chain(*cert)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


@pytest.fixture
def plain() -> Iterator[Server]:
    with Server(metrics_app(_registry())).start() as server:
        yield server


def _secured(pki: Pki, text: str) -> Server:
    (pki.dir / "web.yml").write_text(text)
    return Server(metrics_app(_registry()), web_config=WebConfigFile(pki.dir / "web.yml")).start()


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"


def test_metrics_content_negotiation_gzip_and_name_filter(plain: Server) -> None:
    status, headers, body = get(plain, "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"demo_energy_joules_total 42.0" in body and b"# EOF" not in body
    status, headers, body = get(plain, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}  # a strict OpenMetrics parser
    assert families["demo_energy_joules"].samples[0].value == 42.0 and body.endswith(b"# EOF\n")
    status, headers, body = get(plain, "/metrics", headers={"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip" and b"demo_power_watts 7.0" in gzip.decompress(body)
    status, _, body = get(plain, "/metrics?name[]=demo_power_watts")
    assert b"demo_power_watts 7.0" in body and b"demo_energy_joules" not in body


def test_healthz_and_unknown_paths(plain: Server) -> None:
    assert get(plain, "/healthz")[::2] == (200, b"ok\n")
    assert get(plain, "/other")[::2] == (404, b"see /metrics\n")
    with Server(metrics_app(_registry(), healthy=lambda: False)).start() as stale:
        status, headers, body = get(stale, "/healthz")
        assert (status, body) == (503, b"stale\n") and headers["content-type"].startswith("text/plain")


def test_shutdown_stops_serving_and_frees_the_port() -> None:
    server = Server(metrics_app(_registry())).start()
    port = server.port
    assert get(server, "/healthz")[0] == 200
    server.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    server.close()  # twice: nothing left to stop
    Server(metrics_app(_registry()), port=port).close()  # the port can be bound again at once


def test_a_port_in_use_is_reported_as_such() -> None:
    """The bind error reaches the caller (the CLIs print it naming --port): a failed bind once
    surfaced as "'Server' object has no attribute '_wake_r'"."""
    taken = Server(metrics_app(CollectorRegistry()), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError, match="in use"):
            Server(metrics_app(CollectorRegistry()), "127.0.0.1", taken.port)
    finally:
        taken.server_close()


def test_tls_serves_https_and_refuses_plain_http(pki: Pki) -> None:
    with _secured(pki, TLS) as server:
        status, _, body = get(server, "/metrics", tls=client_tls(pki))
        assert status == 200 and b"demo_energy_joules_total 42.0" in body
        status, _, body = get(server, "/metrics")  # plain HTTP to the TLS port
        assert status == 400 and b"HTTP request to an HTTPS server" in body and b"demo_energy" not in body
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that trusts another CA
            get(server, "/metrics", tls=ssl.create_default_context(cafile=pki.client_ca))


def test_min_version_is_enforced(pki: Pki) -> None:
    with _secured(pki, TLS + "  min_version: TLS13\n") as server:
        assert get(server, "/metrics", tls=client_tls(pki))[0] == 200
        with pytest.raises(ssl.SSLError):
            get(server, "/metrics", tls=client_tls(pki, max_version=ssl.TLSVersion.TLSv1_2))


def test_basic_auth_with_bcrypt(pki: Pki, password_hash: str) -> None:
    with _secured(pki, TLS + f"basic_auth_users:\n  prometheus: '{password_hash}'\n") as server:
        tls = client_tls(pki)
        status, headers, body = get(server, "/metrics", tls=tls)
        assert status == 401 and headers["www-authenticate"].startswith("Basic") and b"demo_energy" not in body
        assert get(server, "/metrics", tls=tls, user="prometheus", password="wrong")[0] == 401
        assert get(server, "/metrics", tls=tls, user="nobody")[0] == 401  # unknown user, right password
        assert get(server, "/metrics", tls=tls, user="prometheus", password=PASSWORD + "x" * 80)[0] == 401  # > 72 bytes
        status, _, body = get(server, "/metrics", tls=tls, user="prometheus")
        assert status == 200 and b"demo_energy_joules_total 42.0" in body
        assert get(server, "/metrics", tls=tls, user="prometheus")[0] == 200  # again, from the cache
        assert get(server, "/metrics", tls=tls, headers={"Authorization": "Basic !!notbase64"})[0] == 401
        assert get(server, "/healthz", tls=tls)[::2] == (200, b"ok\n")  # probes carry no password


def test_basic_auth_without_tls(pki: Pki, password_hash: str) -> None:
    with _secured(pki, f"basic_auth_users:\n  prometheus: '{password_hash}'\n") as server:
        assert get(server, "/metrics")[0] == 401
        assert get(server, "/metrics", user="prometheus")[0] == 200


def test_required_client_certificate(pki: Pki) -> None:
    with _secured(pki, TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n") as server:
        status, _, body = get(server, "/metrics", tls=client_tls(pki))
        assert status == 403 and b"client certificate is required" in body
        assert get(server, "/healthz", tls=client_tls(pki))[0] == 200  # the kubelet's probes present none
        status, _, body = get(server, "/metrics", tls=client_tls(pki, cert=(pki.client_cert, pki.client_key)))
        assert status == 200 and b"demo_energy_joules_total 42.0" in body
        with pytest.raises((ssl.SSLError, ConnectionError)):  # a certificate of an untrusted CA fails the handshake
            get(server, "/metrics", tls=client_tls(pki, cert=(pki.rogue_cert, pki.rogue_key)))


def test_optional_client_certificate(pki: Pki) -> None:
    with _secured(pki, TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: client-ca.crt\n") as server:
        assert get(server, "/metrics", tls=client_tls(pki))[0] == 200
        assert get(server, "/metrics", tls=client_tls(pki, cert=(pki.client_cert, pki.client_key)))[0] == 200
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(server, "/metrics", tls=client_tls(pki, cert=(pki.rogue_cert, pki.rogue_key)))


def _rewrite(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # a coarse file-system clock: make the change visible
        os.utime(path, ns=(before + 1_000_000, before + 1_000_000))


def test_the_web_config_is_reloaded_when_it_changes(pki: Pki, password_hash: str, caplog: pytest.LogCaptureFixture) -> None:
    with _secured(pki, TLS) as server:
        tls = client_tls(pki)
        assert get(server, "/metrics", tls=tls)[0] == 200
        _rewrite(pki.dir / "web.yml", TLS + f"basic_auth_users:\n  prometheus: '{password_hash}'\n")
        assert get(server, "/metrics", tls=tls)[0] == 401
        assert get(server, "/metrics", tls=tls, user="prometheus")[0] == 200
        # an invalid file is logged and the last good configuration stays in force
        _rewrite(pki.dir / "web.yml", TLS + "basic_auth_users:\n  prometheus: plaintext\n")
        with caplog.at_level("ERROR", logger="mlfootprint.web.config"):
            assert get(server, "/metrics", tls=tls)[0] == 401
        assert any("not reloaded" in r.getMessage() for r in caplog.records)
        assert all("plaintext" not in str(getattr(r, "error", "")) for r in caplog.records)
        assert get(server, "/metrics", tls=tls, user="prometheus")[0] == 200


def test_a_stalled_tls_client_does_not_block_others(pki: Pki) -> None:
    """The handshake runs in the connection's thread: a client that connects and never says
    hello holds only its own thread (prometheus_client's server would wait in accept)."""
    with _secured(pki, TLS) as server:
        idle = socket.create_connection(("127.0.0.1", server.port))
        try:
            assert get(server, "/metrics", tls=client_tls(pki), timeout_s=5.0)[0] == 200
        finally:
            idle.close()
