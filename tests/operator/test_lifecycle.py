"""kopf's API session: credentials from the kubeconfig over a bounded connection pool."""

from __future__ import annotations

import asyncio
import base64
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import kopf
import pytest
import yaml

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.handlers.lifecycle import (
    API_REQUEST_CONNECTIONS,
    api_connection_limit,
    login,
    start_metrics,
    watch_streams,
)
from mlfootprint.operator.kube import Kube
from mlfootprint.operator.metrics import OperatorMetrics


def test_connection_limit_covers_every_watch_stream_plus_requests() -> None:
    clusterwide = OperatorConfig()
    assert watch_streams(clusterwide) == 8 + 1 + 2  # 8 resources with discovery, nodes, CRD + namespace observers
    namespaced = OperatorConfig(watch_namespaces=("a", "b", "c"), discovery=False)
    assert watch_streams(namespaced) == 3 * 3 + 1 + 2
    assert api_connection_limit(namespaced) == watch_streams(namespaced) + API_REQUEST_CONNECTIONS


def test_login_gives_kopf_a_bounded_session_with_the_kubeconfig_token(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0k"}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
    }))
    cfg = OperatorConfig(watch_namespaces=("a",))

    async def check() -> None:
        ctx = await login(Kube.from_kubeconfig(str(kubeconfig)), cfg)
        try:
            assert isinstance(ctx, kopf.AiohttpSession) and ctx.server == "https://127.0.0.1:6443"
            session = ctx.aiohttp_session
            assert session.connector is not None and session.connector.limit == api_connection_limit(cfg) > 0
            assert session.headers["Authorization"] == "Bearer t0k"
        finally:
            await ctx.aiohttp_session.close()

    asyncio.run(check())


def test_metrics_server_has_healthz_and_takes_the_web_config(tmp_path: Path) -> None:
    """The operator's /metrics is the shared server: /healthz without credentials, /metrics
    behind the web config's basic auth (real bcrypt); Runtime.close() stops it."""
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  scraper: '{hashed}'\n")
    cfg = OperatorConfig(metrics_port=0, metrics_addr="127.0.0.1", web_config_file=str(web))
    runtime = SimpleNamespace(cfg=cfg, metrics=OperatorMetrics(), metrics_server=None)
    port = start_metrics(runtime)  # type: ignore[arg-type]
    assert port and runtime.metrics_server is not None
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as resp:
            assert resp.read() == b"ok\n"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/metrics", timeout=10)
        assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"].startswith("Basic")
        auth = {"Authorization": "Basic " + base64.b64encode(b"scraper:s3cret").decode()}
        with urllib.request.urlopen(urllib.request.Request(base + "/metrics", headers=auth), timeout=10) as resp:
            assert b"# TYPE mlfootprint_" in resp.read()
    finally:
        runtime.metrics_server.shutdown()
        runtime.metrics_server.server_close()
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "/healthz", timeout=2)
