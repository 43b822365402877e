"""The web-config file: the exporter-toolkit format, checked by the real promtool too; errors
name the setting and the reason and never show a password hash; the exporter's and the
operator's settings refuse an invalid file at start (exit 2 naming --web-config-file)."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from pathlib import Path

import bcrypt
import pytest

from mlfootprint.cli import main
from mlfootprint.exporter.config import load_config
from mlfootprint.operator import cli as operator_cli
from mlfootprint.web.config import WebConfigError, load_web_config
from tests.pki import Pki


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    return str(err.value)


def test_relative_paths_are_read_from_the_config_files_directory(pki: Pki, password_hash: str) -> None:
    cfg = load_web_config(_write(pki.dir / "web.yml", (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  min_version: TLS13\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n")))
    tls = cfg.tls_server_config
    assert tls is not None
    assert (tls.cert_file, tls.key_file, tls.client_ca_file) == (pki.server_cert, pki.server_key, pki.client_ca)
    assert tls.min_version == "TLS13" and tls.max_version == "TLS13"
    assert set(cfg.basic_auth_users) == {"prometheus"}


def test_an_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    cfg = load_web_config(_write(tmp_path / "web.yml", ""))
    assert cfg.tls_server_config is None and cfg.basic_auth_users == {}


def test_promtool_accepts_the_same_file(pki: Pki, password_hash: str) -> None:
    """The format is Prometheus' own: its promtool validates a file this module accepts."""
    web = _write(pki.dir / "promtool-web.yml", (
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki.client_ca}\n"
        f"basic_auth_users:\n  prometheus: '{password_hash}'\n"))
    load_web_config(web)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: run `bash hack/tools/30-prometheus.sh` (make tools)", pytrace=False)
    out = subprocess.run([promtool, "check", "web-config", str(web)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     "tls_server_config.cipher_suites: unknown or unsupported setting"),
    ("tls_server_config:\n  key_file: a.key\n", "tls_server_config.cert_file: Field required"),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequireAndVerifyClientCert\n",
     "client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_ca_file: ca.crt\n",
     "client_ca_file is set but client_auth_type is NoClientCert"),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  client_auth_type: RequestClientCert\n  client_ca_file: c\n",
     "tls_server_config.client_auth_type: Input should be 'NoClientCert', 'VerifyClientCertIfGiven' or 'RequireAndVerifyClientCert'"),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS13\n  max_version: TLS12\n",
     "min_version TLS13 is above max_version TLS12"),
    ("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS10\n",
     "tls_server_config.min_version: Input should be 'TLS12' or 'TLS13'"),
    ("basic_auth_users:\n  'a:b': '$2y$10$abcdefghijklmnopqrstuuN3Dm7ZJfK8u5V8zG1q0hXyYk6c0Qm1e'\n",
     "a basic-auth user name must be non-empty and contain no ':'"),
    ("http_server_config:\n  http2: false\n", "http_server_config: unknown or unsupported setting"),
    ("- a list\n", "expected a mapping"),
])
def test_errors_name_the_setting_and_the_reason(tmp_path: Path, text: str, expected: str) -> None:
    message = _error(_write(tmp_path / "web.yml", text))
    assert expected in message and str(tmp_path / "web.yml") in message


def test_a_bad_hash_is_named_by_user_and_never_shown(tmp_path: Path) -> None:
    secret = "$2y$10$TOOSHORTsecretvalue"
    message = _error(_write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: '{secret}'\n  bob: plaintext-password\n"))
    assert "basic_auth_users.alice: must be a bcrypt hash" in message
    assert "basic_auth_users.bob: must be a bcrypt hash" in message
    assert secret not in message and "TOOSHORT" not in message and "plaintext-password" not in message


def test_a_yaml_error_does_not_quote_the_line(tmp_path: Path, password_hash: str) -> None:
    message = _error(_write(tmp_path / "web.yml", f"basic_auth_users:\n  alice: '{password_hash}\n  bob: [\n"))
    assert "not valid YAML at line" in message and password_hash not in message and password_hash[7:20] not in message


def test_files_that_do_not_load_are_named(pki: Pki, tmp_path: Path) -> None:
    missing = _write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n")
    assert f"tls_server_config.cert_file/key_file: cannot load the certificate {tmp_path / 'nope.crt'}" in _error(missing)
    wrong_key = _write(tmp_path / "web2.yml", (
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.client_key}\n"))
    assert "tls_server_config.cert_file/key_file" in _error(wrong_key)
    bad_ca = _write(tmp_path / "web3.yml", (
        f"tls_server_config:\n  cert_file: {pki.server_cert}\n  key_file: {pki.server_key}\n"
        f"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {tmp_path / 'web.yml'}\n"))
    assert "tls_server_config.client_ca_file: cannot load" in _error(bad_ca)


def test_the_exporter_refuses_an_invalid_web_config_naming_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "web.yml", "basic_auth_users:\n  alice: not-a-hash\n")
    assert main(["exporter", "--gpu-source", "none", "--web-config-file", str(bad), "--once"]) == 2
    err = capsys.readouterr().err
    assert f"web_config_file: {bad}: basic_auth_users.alice: must be a bcrypt hash" in err and "not-a-hash" not in err
    env = load_config(env={"MLFOOTPRINT_EXPORTER_WEB_CONFIG_FILE": "", "MLFOOTPRINT_EXPORTER_GPU_SOURCE": "none"})
    assert env.web_config_file is None  # an empty variable unsets it, as for the other files


def test_the_operator_refuses_an_invalid_web_config_naming_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _write(tmp_path / "web.yml", "tls_server_config:\n  cert_file: x\n")
    parser = argparse.ArgumentParser()
    operator_cli.add_arguments(parser)
    with pytest.raises(SystemExit) as exit_:
        operator_cli.run(parser.parse_args(["--web-config-file", str(bad)]))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"--web-config-file: {bad}: tls_server_config.key_file: Field required" in err


def test_the_documented_example_loads(pki: Pki, tmp_path: Path) -> None:
    """docs/exporter.md's web-config.yml, with the certificate files it names in place."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "exporter.md").read_text()
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S) if "tls_server_config" in b]
    for name, source in {"tls.crt": pki.server_cert, "tls.key": pki.server_key, "ca.crt": pki.client_ca}.items():
        shutil.copy(source, tmp_path / name)
    cfg = load_web_config(_write(tmp_path / "web-config.yml", block))
    assert cfg.tls_server_config is not None and cfg.tls_server_config.client_auth_type == "RequireAndVerifyClientCert"
    (hashed,) = cfg.basic_auth_users.values()
    assert bcrypt.checkpw(b"change-me", hashed.encode())  # the password the comment names
