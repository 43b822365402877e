"""A small JSON client for the demo's API server (list, get, create, merge-patch) on the
`kubernetes` package's own ApiClient: its kubeconfig loading (any user kind), TLS and
connection pool, with raw API paths and plain dicts.

The demo drives pod phases itself (many small requests per second); the real kubectl is kept
for what a person would type (apply, get).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.client.exceptions import ApiException


class KubeError(RuntimeError):
    """An API request failed; the message carries the method, path, status and the server's reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Kube:
    """JSON requests with the kubeconfig's current context."""

    def __init__(self, kubeconfig: Path, timeout_s: float = 10.0) -> None:
        cfg = Configuration()
        kube_config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.retries = 0  # an unreachable API server is an error here, not a wait
        self._api = ApiClient(cfg)
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._api.close()

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", query: dict[str, str] | None = None) -> Any:
        _m, url, headers, data, _ = self._api.param_serialize(
            method, path, query_params=list((query or {}).items()), body=body,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            resp = self._api.call_api(method, url, headers, data, _request_timeout=self._timeout_s)
            raw = resp.read()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as e:
            raise KubeError(f"{method} {path}: {type(e).__name__}: {getattr(e, 'reason', None) or e}") from None
        if resp.status >= 400:
            try:
                reason = json.loads(raw).get("message", "")
            except (ValueError, AttributeError):
                reason = raw[:200].decode(errors="replace")
            raise KubeError(f"{method} {path}: HTTP {resp.status}: {reason}", resp.status)
        return json.loads(raw or b"null")

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        return list(self.request("GET", path, query=query).get("items") or [])

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", path, obj))

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", path, patch, content_type="application/merge-patch+json"))
