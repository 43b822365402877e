"""Fixtures of the web tests: a PKI made with openssl and a bcrypt hash (tests/pki.py)."""

from __future__ import annotations

import pytest

from tests.pki import Pki, bcrypt_hash, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def password_hash() -> str:
    return bcrypt_hash()
