"""kopf's API session: credentials from the kubeconfig over a bounded connection pool."""

from __future__ import annotations

import asyncio

from pathlib import Path

import kopf
import yaml

from mlfootprint.operator.config import OperatorConfig
from mlfootprint.operator.handlers.lifecycle import API_REQUEST_CONNECTIONS, api_connection_limit, login, watch_streams
from mlfootprint.operator.kube import Kube


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
