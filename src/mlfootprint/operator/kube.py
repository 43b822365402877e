"""The operator's one async Kubernetes API client, for what kopf does not do for us:
ConfigMaps, workloads, exporter endpoints, status writes, auto-discovered CRs, Leases.

One aiohttp session on the operator's event loop (a bounded connection pool), with the
credentials of the kubeconfig or the in-cluster service account. The ``kubernetes`` package
only parses the kubeconfig (exec plugins, in-cluster token); every request is async, so the
event loop never blocks and no thread pool is involved. kopf's own session is built from
the same credentials (:meth:`Kube.connection_info`). A 401 re-reads the credentials once
(service-account tokens are rotated on disk).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

__all__ = ["ApiError", "Conflict", "Kube", "NotFound", "kind_to_plural"]

log = logging.getLogger(__name__)

#: Connections for requests (status writes, ConfigMaps, Events) on top of kopf's watches.
REQUEST_CONNECTIONS = 16
REQUEST_TIMEOUT_S = 30.0


class ApiError(RuntimeError):
    """A request the API server refused; ``status`` is the HTTP status, ``reason`` its reason."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".rstrip(": "))
        self.status = status
        self.reason = reason
        self.message = message


class NotFound(ApiError, LookupError):
    pass


class Conflict(ApiError):
    pass


def kind_to_plural(kind: str) -> str:
    k = kind.lower()
    return k + "es" if k.endswith("s") else k + "s"


def _credentials(path: str | None) -> kopf.ConnectionInfo:
    """Credentials from a kubeconfig (exec plugins included) or the in-cluster service account."""
    import kubernetes.client  # noqa: PLC0415
    import kubernetes.config  # noqa: PLC0415

    if path:
        c = kubernetes.config.new_client_from_config(config_file=path).configuration
    else:
        try:
            c = kubernetes.client.Configuration()
            kubernetes.config.load_incluster_config(client_configuration=c)
        except kubernetes.config.ConfigException:
            c = kubernetes.config.new_client_from_config().configuration
    header = c.get_api_key_with_prefix("BearerToken") or c.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return kopf.ConnectionInfo(
        server=c.host,
        ca_path=c.ssl_ca_cert,
        insecure=not c.verify_ssl,
        scheme=scheme,
        token=token,
        certificate_path=c.cert_file,
        private_key_path=c.key_file,
    )


class Kube:
    """A small async facade over the Kubernetes REST API (JSON in, JSON out)."""

    def __init__(self, credentials: Callable[[], kopf.ConnectionInfo], *, connections: int = REQUEST_CONNECTIONS) -> None:
        self._credentials = credentials
        self._info = credentials()
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests = 0
        self.status_writes_in_flight = 0

    @classmethod
    def from_kubeconfig(cls, path: str | None, *, connections: int = REQUEST_CONNECTIONS) -> Kube:
        return cls(lambda: _credentials(path), connections=connections)

    def connection_info(self) -> kopf.ConnectionInfo:
        return self._info

    @property
    def server(self) -> str:
        return str(self._info.server).rstrip("/")

    def _ssl(self) -> ssl.SSLContext | bool:
        return self._info.as_ssl_context()

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections, ssl=self._ssl()),
                headers=self._info.as_http_headers(),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            )
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def request(
        self, method: str, path: str, *, body: Any = None, content_type: str = "application/json", retry_auth: bool = True
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer. Raises NotFound, Conflict or ApiError."""
        session = self._open()
        data = None if body is None else json.dumps(body)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        self.requests += 1
        async with session.request(method, self.server + path, data=data, headers=headers) as resp:
            text = await resp.text()
            if resp.status == 401 and retry_auth:
                self._info = self._credentials()
                await self.close()
                return await self.request(method, path, body=body, content_type=content_type, retry_auth=False)
            if resp.status >= 300:
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = {}
                reason, message = str(doc.get("reason") or resp.reason or ""), str(doc.get("message") or "")
                cls = NotFound if resp.status == 404 else Conflict if resp.status == 409 else ApiError
                raise cls(resp.status, reason, message)
            return json.loads(text) if text else {}

    # ------------------------------------------------------------------ reads
    async def get_json(self, path: str) -> dict[str, Any]:
        return await self.request("GET", path)

    async def get_configmap(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.get_json(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def get_object(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        return await self.get_json(f"{base}/namespaces/{namespace}/{kind_to_plural(kind)}/{name}")

    async def get_namespace(self, name: str) -> dict[str, Any]:
        return await self.get_json(f"/api/v1/namespaces/{name}")

    async def exporter_urls(self, namespace: str, service: str, scheme: str = "http", path: str = "/metrics") -> list[str]:
        """Ready endpoints of the exporter Service (EndpointSlices, falling back to Endpoints)."""
        urls: list[str] = []
        try:
            slices = await self.get_json(
                f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
                f"?labelSelector={quote(f'kubernetes.io/service-name={service}', safe='')}"
            )
            for s in slices.get("items", []):
                port = _metrics_port(s.get("ports") or [])
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
            port = _metrics_port(subset.get("ports") or [])
            for addr in subset.get("addresses") or []:
                urls.append(f"{scheme}://{addr['ip']}:{port}{path}")
        return sorted(set(urls))

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any]:
        return await self.get_json(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}")

    # ------------------------------------------------------------------ writes
    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a coordination.k8s.io Lease; Conflict when it already exists."""
        return await self.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases", body=body)

    async def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Replace a Lease (PUT): ``body.metadata.resourceVersion`` makes it conditional, so of
        two replicas updating the same version one gets Conflict."""
        return await self.request("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", body=body)

    async def replace_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Replace the whole status of a mlfootprint.io object (JSON patch ``add /status``:
        no merge, so keys that left the ledger leave the stored object too). Counted in
        ``status_writes_in_flight`` while it runs (the refresh sheds figure-only writes when
        the API server is slow)."""
        self.status_writes_in_flight += 1
        try:
            return await self.request(
                "PATCH",
                f"/apis/mlfootprint.io/v1alpha1/namespaces/{namespace}/{plural}/{name}/status",
                body=[{"op": "add", "path": "/status", "value": status}],
                content_type="application/json-patch+json",
            )
        finally:
            self.status_writes_in_flight -= 1

    async def replace_status_field(self, plural: str, namespace: str, name: str, field: str, value: Any) -> dict[str, Any]:
        """Set one field of a mlfootprint.io object's status, leaving the rest as it is."""
        return await self.request(
            "PATCH",
            f"/apis/mlfootprint.io/v1alpha1/namespaces/{namespace}/{plural}/{name}/status",
            body=[{"op": "add", "path": f"/status/{field}", "value": value}],
            content_type="application/json-patch+json",
        )

    async def create_custom(self, namespace: str, plural: str, body: dict[str, Any]) -> bool:
        """Create a mlfootprint.io object; False when it already exists."""
        try:
            await self.request("POST", f"/apis/mlfootprint.io/v1alpha1/namespaces/{namespace}/{plural}", body=body)
            return True
        except Conflict:
            return False


def _metrics_port(ports: list[dict[str, Any]]) -> int | None:
    named = next((p.get("port") for p in ports if p.get("name") == "metrics"), None)
    return named or (ports[0].get("port") if ports else None)
