"""Thin Kubernetes API I/O for what kopf does not do for us (ConfigMaps, workloads,
exporter endpoints, auto-discovered CRs). Blocking `kubernetes` client calls run in a
worker thread so the operator's event loop never blocks."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.rest import ApiException

__all__ = ["Kube", "NotFound", "kind_to_plural"]

log = logging.getLogger(__name__)


class NotFound(LookupError):
    pass


def kind_to_plural(kind: str) -> str:
    k = kind.lower()
    return k + "es" if k.endswith("s") else k + "s"


class Kube:
    """A small async facade over one `kubernetes.client.ApiClient`."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api = api_client
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.custom = kubernetes.client.CustomObjectsApi(api_client)

    @classmethod
    def from_kubeconfig(cls, path: str | None) -> Kube:
        if path:
            return cls(kubernetes.config.new_client_from_config(config_file=path))
        try:
            kubernetes.config.load_incluster_config()
            return cls(kubernetes.client.ApiClient())
        except kubernetes.config.ConfigException:
            return cls(kubernetes.config.new_client_from_config())

    @property
    def configuration(self) -> kubernetes.client.Configuration:
        return self.api.configuration

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ApiException as e:
            if e.status == 404:
                raise NotFound(str(e.reason)) from None
            raise

    async def get_json(self, path: str) -> dict[str, Any]:
        """GET an API path and return the decoded JSON (no model deserialisation)."""

        def call() -> dict[str, Any]:
            method, url, headers, body, _ = self.api.param_serialize(
                "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
            )
            resp = self.api.call_api(method, url, header_params=headers, body=body, _request_timeout=30)
            resp.read()
            if not 200 <= resp.status < 300:
                raise ApiException(http_resp=resp)
            return json.loads(resp.data)  # type: ignore[no-any-return]

        return await self._call(call)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.get_json(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def get_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        return await self.get_json(f"{base}/namespaces/{namespace}/{kind_to_plural(kind)}/{name}")

    async def exporter_urls(self, namespace: str, service: str, scheme: str = "http", path: str = "/metrics") -> list[str]:
        """Ready endpoints of the exporter Service (EndpointSlices, falling back to Endpoints)."""
        urls: list[str] = []
        try:
            slices = await self.get_json(
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
                f"?labelSelector=kubernetes.io%2Fservice-name%3D{service}"
            )
            for s in slices.get("items", []):
                ports = s.get("ports") or []
                port = next((p.get("port") for p in ports if p.get("name") == "metrics"), None) or (
                    ports[0].get("port") if ports else None
                )
                if port is None:
                    continue
                for ep in s.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready") is False:
                        continue
                    for addr in ep.get("addresses") or []:
                        host = f"[{addr}]" if ":" in addr else addr
                        urls.append(f"{scheme}://{host}:{port}{path}")
        except NotFound:
            pass
        if urls:
            return sorted(set(urls))
        try:
            eps = await self.get_json(f"/api/v1/namespaces/{namespace}/endpoints/{service}")
        except NotFound:
            return []
        for subset in eps.get("subsets") or []:
            ports = subset.get("ports") or []
            port = next((p.get("port") for p in ports if p.get("name") == "metrics"), None) or (
                ports[0].get("port") if ports else None
            )
            for addr in subset.get("addresses") or []:
                urls.append(f"{scheme}://{addr['ip']}:{port}{path}")
        return sorted(set(urls))

    async def create_custom(self, namespace: str, plural: str, body: dict[str, Any]) -> bool:
        """Create a mlfootprint.io object; False when it already exists."""
        try:
            await asyncio.to_thread(
                self.custom.create_namespaced_custom_object, "mlfootprint.io", "v1alpha1", namespace, plural, body,
                _request_timeout=30,
            )
            return True
        except ApiException as e:
            if e.status == 409:
                return False
            raise

    async def get_namespace(self, name: str) -> dict[str, Any]:
        return await self.get_json(f"/api/v1/namespaces/{name}")
