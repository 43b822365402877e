"""The web-config file: TLS and basic auth for the HTTP endpoints, in the format of the
Prometheus exporter-toolkit (node_exporter's and dcgm-exporter's ``--web.config.file``)::

    tls_server_config:
      cert_file: tls.crt            # relative paths: from the config file's directory
      key_file: tls.key
      client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven
      client_ca_file: ca.crt
      min_version: TLS12            # TLS12 (default) or TLS13; max_version likewise (default TLS13)
    basic_auth_users:
      prometheus: $2y$10$...        # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':')

Settings of exporter-toolkit that are not listed here (``cipher_suites``, ``client_allowed_sans``,
``http_server_config``, ...) are refused as unsupported rather than ignored. Errors name the
setting and the reason and never show a password hash.

With ``RequireAndVerifyClientCert`` every path but ``/healthz`` refuses a connection without a
verified client certificate (403); the handshake itself asks for a certificate without
requiring one, so that the kubelet's HTTPS probes, which present none, still reach
``/healthz``. ``/healthz`` needs no password either: it tells only "ok" or "stale".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import bcrypt
import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["ActiveWebConfig", "BasicAuth", "TlsServerConfig", "WebConfig", "WebConfigError", "WebConfigFile", "load_web_config"]

log = logging.getLogger(__name__)

TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
#: checked against when the user is unknown, so that timing does not tell which users exist
#: (bcrypt of a throwaway password, cost 10, as exporter-toolkit does)
_DUMMY_HASH = b"$2b$10$oNNJbTPsT.JGGpXhKEq1JO.8WXI.6IQHqRQBupFgvn1fL0cZpwihG"
#: remembered (user, password) checks; a bcrypt check costs tens of ms on purpose
_AUTH_CACHE_ENTRIES = 256


class WebConfigError(ValueError):
    """An invalid web-config file; the message names the file, the setting and the reason."""


def _bcrypt_hash(value: str) -> str:
    if not _BCRYPT_HASH.match(value):
        # the value itself is never shown: it is a password hash
        raise ValueError("must be a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 60 characters); value not shown")
    return value


def _user_name(value: str) -> str:
    if not value or ":" in value:
        raise ValueError("a basic-auth user name must be non-empty and contain no ':'")
    return value


BcryptHash = Annotated[str, AfterValidator(_bcrypt_hash)]
UserName = Annotated[str, AfterValidator(_user_name)]


class TlsServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path = Field(description="PEM server certificate (chain)")
    key_file: Path = Field(description="PEM private key of cert_file")
    client_auth_type: Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] = "NoClientCert"
    client_ca_file: Path | None = Field(default=None, description="PEM CA bundle that signs client certificates")
    min_version: Literal["TLS12", "TLS13"] = "TLS12"
    max_version: Literal["TLS12", "TLS13"] = "TLS13"

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if self.client_auth_type != "NoClientCert" and self.client_ca_file is None:
            raise ValueError(f"client_auth_type {self.client_auth_type} needs client_ca_file (the CA of the client certificates)")
        if self.client_ca_file is not None and self.client_auth_type == "NoClientCert":
            raise ValueError("client_ca_file is set but client_auth_type is NoClientCert (client certificates would never be asked for)")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"min_version {self.min_version} is above max_version {self.max_version}")
        return self

    def relative_to(self, directory: Path) -> TlsServerConfig:
        """File paths joined to ``directory`` (absolute ones stay as they are)."""
        files = {"cert_file": self.cert_file, "key_file": self.key_file, "client_ca_file": self.client_ca_file}
        return self.model_copy(update={k: directory / v for k, v in files.items() if v is not None})

    def files(self) -> tuple[Path, ...]:
        return tuple(p for p in (self.cert_file, self.key_file, self.client_ca_file) if p is not None)

    def ssl_context(self) -> ssl.SSLContext:
        """The server context; raises WebConfigError naming the file that does not load."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.maximum_version = TLS_VERSIONS[self.max_version]
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(
                f"tls_server_config.cert_file/key_file: cannot load the certificate {self.cert_file} "
                f"with the key {self.key_file}: {exc}"
            ) from exc
        if self.client_ca_file is not None:
            try:
                ctx.load_verify_locations(cafile=self.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise WebConfigError(f"tls_server_config.client_ca_file: cannot load {self.client_ca_file}: {exc}") from exc
            # verified when given; "required" is enforced per path (see the module docstring)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[UserName, BcryptHash] = Field(default_factory=dict)


def load_web_config(path: Path) -> WebConfig:
    """Read and validate the file, and check that the certificates and keys it names load;
    relative file paths are taken from its directory."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise WebConfigError(f"{path}: {exc}") from exc
    except yaml.YAMLError as exc:  # its text quotes the offending line, which may hold a hash
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise WebConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    if not isinstance(doc, dict):
        raise WebConfigError(f"{path}: expected a mapping (tls_server_config, basic_auth_users)")
    try:
        cfg = WebConfig.model_validate(doc)
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():  # loc and msg only: err["input"] may be a password hash
            loc = ".".join(str(p) for p in err["loc"]) or "web config"
            msg = "unknown or unsupported setting" if err["type"] == "extra_forbidden" else err["msg"]
            reasons.append(f"{loc}: {msg.removeprefix('Value error, ')}")
        raise WebConfigError(f"{path}: " + "; ".join(reasons)) from None
    if cfg.tls_server_config is None:
        return cfg
    tls = cfg.tls_server_config.relative_to(Path(path).parent)
    try:
        tls.ssl_context()
    except WebConfigError as exc:
        raise WebConfigError(f"{path}: {exc}") from None
    return cfg.model_copy(update={"tls_server_config": tls})


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes, as exporter-toolkit does:
    one bcrypt check at a time, results remembered (keyed by a digest, not the password), and
    a fixed hash checked for unknown users so that timing does not reveal user names."""

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        self._lock = threading.Lock()
        self._cache: dict[bytes, bool] = {}

    def allows(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if key not in self._cache:
                known = user in self._users
                try:
                    ok = bcrypt.checkpw(password.encode(), self._users.get(user, _DUMMY_HASH))
                except ValueError:  # e.g. a password over bcrypt's 72 bytes
                    ok = False
                if len(self._cache) >= _AUTH_CACHE_ENTRIES:
                    self._cache.clear()
                self._cache[key] = ok and known
            return self._cache[key]


@dataclass(frozen=True)
class ActiveWebConfig:
    """What the server applies: the TLS context (None: plain HTTP) and the checks."""

    tls: ssl.SSLContext | None
    auth: BasicAuth | None
    client_cert_required: bool

    @classmethod
    def build(cls, cfg: WebConfig) -> ActiveWebConfig:
        tls = cfg.tls_server_config
        return cls(
            tls=tls.ssl_context() if tls is not None else None,
            auth=BasicAuth(cfg.basic_auth_users) if cfg.basic_auth_users else None,
            client_cert_required=tls is not None and tls.client_auth_type == "RequireAndVerifyClientCert",
        )


def _signature(paths: tuple[Path, ...]) -> tuple[tuple[int, int] | None, ...]:
    def stat(p: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(p)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    return tuple(stat(p) for p in paths)


class WebConfigFile:
    """The web-config file, reloaded when it or a certificate it names changes (checked on each
    connection, so a renewed certificate or an updated Secret is picked up without a restart).
    The first load raises WebConfigError; a reload that fails is logged and the last good
    configuration stays in force."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        cfg = load_web_config(self.path)
        self._active = ActiveWebConfig.build(cfg)
        self._files = self._watched(cfg)
        self._seen = _signature(self._files)

    def _watched(self, cfg: WebConfig) -> tuple[Path, ...]:
        tls = cfg.tls_server_config
        return (self.path, *(tls.files() if tls is not None else ()))

    def current(self) -> ActiveWebConfig:
        with self._lock:
            seen = _signature(self._files)
            if seen == self._seen:
                return self._active
            self._seen = seen
            try:
                cfg = load_web_config(self.path)
                self._active = ActiveWebConfig.build(cfg)
            except WebConfigError as exc:
                log.error("web config not reloaded; the previous one stays in force", extra={"error": str(exc)})
                return self._active
            self._files = self._watched(cfg)
            self._seen = _signature(self._files)
            log.info("web config reloaded", extra={"path": str(self.path), "tls": self._active.tls is not None,
                                                     "basic_auth": self._active.auth is not None})
            return self._active
