"""A throwaway PKI made with the real `openssl` CLI (a server CA, a server certificate for
127.0.0.1/localhost, a client CA with one client certificate, and a second, untrusted CA with
a client certificate of its own), and a bcrypt hash of a known password."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("openssl not found (Debian package openssl)", pytrace=False)
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=cwd)


def _leaf(name: str, ca: str, extensions: str, cwd: Path) -> None:
    (cwd / f"{name}.ext").write_text(extensions + "\nbasicConstraints=CA:FALSE\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=cwd)


def make_pki(d: Path) -> Pki:
    for ca in ("server-ca", "client-ca", "rogue-ca"):
        _ca(ca, d)
    _leaf("server", "server-ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth", d)
    _leaf("client", "client-ca", "extendedKeyUsage=clientAuth", d)
    _leaf("rogue", "rogue-ca", "extendedKeyUsage=clientAuth", d)
    return Pki(d, d / "server-ca.crt", d / "server.crt", d / "server.key", d / "client-ca.crt",
               d / "client.crt", d / "client.key", d / "rogue.crt", d / "rogue.key")


def bcrypt_hash(password: str = PASSWORD) -> str:
    """bcrypt at the cost htpasswd -B uses, with htpasswd's $2y$ prefix."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode().replace("$2b$", "$2y$", 1)
