"""A minimal JSON client for the demo's API server (list, get, create, merge-patch).

The demo drives pod phases itself (many small requests per second); the real kubectl is kept
for what a person would type (apply, get). Credentials come from the kubeconfig's embedded
client certificate (the local control plane's admin user).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml


class KubeError(RuntimeError):
    """An API request failed; the message carries the method, path, status and body."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Kube:
    """JSON over HTTPS with the kubeconfig's current context (client-certificate users only)."""

    def __init__(self, kubeconfig: Path, cert_dir: Path, timeout_s: float = 10.0) -> None:
        doc = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = doc["current-context"]
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
        self.server = str(cluster["server"]).rstrip("/")
        cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = {}
        for key, name in (("certificate-authority-data", "ca.crt"), ("client-certificate-data", "client.crt"),
                          ("client-key-data", "client.key")):
            src = cluster if key.startswith("certificate-authority") else user
            path = cert_dir / name
            path.write_bytes(base64.b64decode(src[key]))
            path.chmod(0o600)
            files[name] = path
        self._ctx = ssl.create_default_context(cafile=str(files["ca.crt"]))
        self._ctx.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
        self._timeout_s = timeout_s

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json", query: dict[str, str] | None = None) -> Any:
        url = self.server + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=self._timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                text = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                pass
            raise KubeError(f"{method} {path}: HTTP {e.code}: {text}", e.code) from None
        except (urllib.error.URLError, OSError) as e:
            raise KubeError(f"{method} {path}: {e}") from None

    def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        return list(self.request("GET", path, query=query).get("items") or [])

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", path, obj))

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", path, patch, content_type="application/merge-patch+json"))
