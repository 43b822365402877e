"""Certificates and keys for the local control plane, made with the `openssl` CLI.

ECDSA P-256 everywhere (milliseconds to generate, unlike RSA): a self-signed CA, the API
server's serving certificate (SANs 127.0.0.1/localhost/kubernetes.default...), one client
certificate per identity (the Kubernetes user is the CN, its groups the O fields, as in
https://kubernetes.io/docs/reference/access-authn-authz/authentication/#x509-client-certificates)
and the service-account signing key pair.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
# A minimal config so that the distribution's [v3_ca] defaults are not added to leaf certs.
_CONFIG = "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n"
_VALIDITY_DAYS = "3650"


class PkiError(RuntimeError):
    """openssl is missing or failed."""


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key (PEM files)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Every file the control plane needs; paths under one directory."""

    ca: CertPair
    apiserver: CertPair
    admin: CertPair
    controller_manager: CertPair
    scheduler: CertPair
    sa_key: Path
    sa_pub: Path


def _openssl(args: list[str]) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise PkiError("openssl not found on PATH (Debian package `openssl`)")
    proc = subprocess.run([openssl, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PkiError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _leaf(directory: Path, config: Path, ca: CertPair, name: str, subject: str, ext: list[str]) -> CertPair:
    pair = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
    args = ["req", "-config", str(config), "-x509", "-CA", str(ca.cert), "-CAkey", str(ca.key), *_CURVE]
    args += ["-keyout", str(pair.key), "-out", str(pair.cert), "-days", _VALIDITY_DAYS, "-subj", subject]
    args += ["-addext", "basicConstraints=critical,CA:FALSE"]
    args += ["-addext", "keyUsage=critical,digitalSignature,keyEncipherment"]
    for e in ext:
        args += ["-addext", e]
    _openssl(args)
    return pair


def client_subject(user: str, groups: tuple[str, ...] = ()) -> str:
    """The X.509 subject of a client certificate for a Kubernetes user and its groups."""
    return "".join(f"/O={g}" for g in groups) + f"/CN={user}"


def generate(directory: Path, *, service_ip: str = "10.0.0.1", extra_ips: tuple[str, ...] = ()) -> Pki:
    """Create (or overwrite) the CA, certificates and service-account keys in `directory`.

    `extra_ips` are added to the API server's serving certificate (the real node's IP, where
    pods reach the API server through the `kubernetes` Service).
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    config = directory / "openssl.cnf"
    config.write_text(_CONFIG)
    ca = CertPair(directory / "ca.crt", directory / "ca.key")
    _openssl(
        ["req", "-config", str(config), "-x509", *_CURVE, "-keyout", str(ca.key), "-out", str(ca.cert)]
        + ["-days", _VALIDITY_DAYS, "-subj", "/CN=mlfootprint-dev-ca"]
        + ["-addext", "basicConstraints=critical,CA:TRUE"]
        + ["-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]
    )
    sans = ",".join(
        ["IP:127.0.0.1", f"IP:{service_ip}", *(f"IP:{ip}" for ip in extra_ips)]
        + ["DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default"]
        + ["DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local"]
    )
    apiserver = _leaf(
        directory, config, ca, "apiserver", "/CN=kube-apiserver",
        ["extendedKeyUsage=serverAuth", f"subjectAltName={sans}"],
    )
    client = ["extendedKeyUsage=clientAuth"]
    admin = _leaf(directory, config, ca, "admin", client_subject("mlfootprint-admin", ("system:masters",)), client)
    kcm = _leaf(directory, config, ca, "controller-manager", client_subject("system:kube-controller-manager"), client)
    sched = _leaf(directory, config, ca, "scheduler", client_subject("system:kube-scheduler"), client)
    sa_key, sa_pub = directory / "sa.key", directory / "sa.pub"
    _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(sa_key)])
    _openssl(["pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub)])
    logger.debug("generated certificates", extra={"pki_dir": str(directory)})
    return Pki(ca, apiserver, admin, kcm, sched, sa_key, sa_pub)


def issue_client(directory: Path, ca: CertPair, name: str, user: str, groups: tuple[str, ...] = ()) -> CertPair:
    """A client certificate from the CA for a Kubernetes user (CN) and its groups (O)."""
    config = directory / "openssl.cnf"
    return _leaf(directory, config, ca, name, client_subject(user, groups), ["extendedKeyUsage=clientAuth"])


def issue_server(directory: Path, ca: CertPair, name: str, common_name: str, ips: tuple[str, ...], dns: tuple[str, ...]) -> CertPair:
    """A serving certificate from the CA (e.g. the kubelet's, so the API server can verify it)."""
    config = directory / "openssl.cnf"
    sans = ",".join([*(f"IP:{ip}" for ip in ips), *(f"DNS:{d}" for d in dns)])
    return _leaf(directory, config, ca, name, f"/CN={common_name}", ["extendedKeyUsage=serverAuth", f"subjectAltName={sans}"])
