"""One settings mechanism for the exporter and the operator (mlfootprint.settings): the same
layers in the same order, the same error style, --help and docs generated from the models."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlfootprint.cli import build_parser
from mlfootprint.exporter.config import SETTINGS as EXPORTER
from mlfootprint.operator.config import SETTINGS as OPERATOR
from mlfootprint.settings import Settings, SettingsError, _show

ROOT = Path(__file__).resolve().parents[2]
#: component -> (its settings, a float setting, that setting's flag)
LAYERED: dict[str, tuple[Settings[Any], str, str]] = {
    "exporter": (EXPORTER, "swing_window_s", "--swing-window-s"),
    "operator": (OPERATOR, "interval_s", "--interval"),
}


def _parse(component: str, argv: list[str]) -> argparse.Namespace:
    return build_parser([component]).parse_args([component, *argv])


@pytest.mark.parametrize("component", LAYERED)
def test_same_precedence_in_both_components(component: str, tmp_path: Path) -> None:
    """defaults < YAML (--config) < environment < flags, each layer seen winning over the one below."""
    settings, key, flag = LAYERED[component]
    env_var = f"MLFOOTPRINT_{component.upper()}_{key.upper()}"
    assert env_var in settings.envs(key)
    file = tmp_path / "settings.yaml"
    file.write_text(f"{key}: 7\n")
    default = settings.fields[key].default

    def value(argv: list[str], env: dict[str, str]) -> float:
        return float(getattr(settings.from_args(_parse(component, argv), env), key))

    assert value([], {}) == default
    assert value(["--config", str(file)], {}) == 7
    assert value(["--config", str(file)], {env_var: "8"}) == 8
    assert value(["--config", str(file), flag, "9"], {env_var: "8"}) == 9
    assert value([flag, "9"], {}) == 9
    assert default not in (7, 8, 9)


@pytest.mark.parametrize("component", LAYERED)
def test_env_error_names_the_variable_and_never_the_value(component: str) -> None:
    settings, key, _ = LAYERED[component]
    var = f"MLFOOTPRINT_{component.upper()}_{key.upper()}"
    with pytest.raises(SettingsError) as err:
        settings.load(env={var: "s3cr3t"})
    assert str(err.value).startswith(f"{var}: Input should be a valid number")
    assert "s3cr3t" not in str(err.value)
    with pytest.raises(SettingsError, match=f"^{var}: Input should be a finite number"):
        settings.load(env={var: "inf"})


@pytest.mark.parametrize("component", LAYERED)
def test_yaml_errors_name_the_file_key(component: str, tmp_path: Path) -> None:
    settings, key, _ = LAYERED[component]
    file = tmp_path / "c.yaml"
    file.write_text(f"{key}: -1\n")
    with pytest.raises(SettingsError, match=f"^{key} in {file}: Input should be greater"):
        settings.load(file)
    file.write_text("no_such_setting: 1\n")
    with pytest.raises(SettingsError, match=f"^no_such_setting in {file}: unknown setting$"):
        settings.load(file)
    file.write_text("token: [s3cr3t\n")
    with pytest.raises(SettingsError) as err:
        settings.load(file)
    assert str(err.value).startswith(f"--config {file}: not valid YAML at line 2") and "s3cr3t" not in str(err.value)
    with pytest.raises(SettingsError, match=f"^--config {tmp_path / 'missing.yaml'}: No such file"):
        settings.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("component", LAYERED)
def test_cli_errors_exit_2_in_one_style(component: str) -> None:
    _, _, flag = LAYERED[component]
    argv = [sys.executable, "-m", "mlfootprint", component, flag, "-3"]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"mlfootprint {component}: error: {flag}: Input should be greater than"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("component", LAYERED)
def test_help_lists_every_setting_with_its_default(component: str) -> None:
    settings = LAYERED[component][0]
    wide = {**os.environ, "COLUMNS": "1000"}  # argparse wraps at hyphens: /var/lib/kubelet/pod- resources
    argv = [sys.executable, "-m", "mlfootprint", component, "--help"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60, env=wide).stdout
    flat = " ".join(out.split())
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", out)]  # one per option
    assert f"MLFOOTPRINT_{component.upper()}_<KEY>" in flat and "--config FILE" in flat
    for name, field in settings.fields.items():
        flags = settings.flags(name)
        if flags:
            entry = next(e for e in entries if e.startswith((flags[0] + " ", flags[0] + ",")))
            assert f"(default: {_show(field.default)}" in entry, (name, entry)
            assert all(f in entry for f in flags), (name, entry)
        else:  # a secret: no flag, listed by its environment variables
            assert " / ".join(settings.envs(name)) in out, name
        assert field.description, name


def test_service_links_are_not_settings() -> None:
    """Kubernetes adds <SERVICE>_PORT=tcp://... for a Service named mlfootprint-operator: not a
    setting, not an error; a misspelt setting still is."""
    links = {"MLFOOTPRINT_OPERATOR_PORT": "tcp://10.0.0.1:9090", "MLFOOTPRINT_OPERATOR_SERVICE_HOST": "10.0.0.1",
             "MLFOOTPRINT_OPERATOR_SERVICE_PORT_METRICS": "9090", "MLFOOTPRINT_OPERATOR_PORT_9090_TCP_ADDR": "10.0.0.1"}
    assert OPERATOR.load(env=links) == OPERATOR.load(env={})
    with pytest.raises(SettingsError, match=r"^MLFOOTPRINT_OPERATOR_INTERVAL: unknown setting$"):
        OPERATOR.load(env={**links, "MLFOOTPRINT_OPERATOR_INTERVAL": "5"})


def test_docs_list_every_setting() -> None:
    from mlfootprint.settings_docs import ROOT as DOCS_ROOT
    from mlfootprint.settings_docs import references, render

    assert DOCS_ROOT == ROOT
    for doc, settings in references().items():
        text = (ROOT / doc).read_text()
        assert text == render(text, settings), f"{doc}: the settings reference is stale: run `make docs`"
        for name in settings.fields:
            assert f"| `{name}` |" in text, (doc, name)
