"""One way to configure a component: its pydantic model is the whole command line.

Every field of the model is a setting, layered **defaults -> ``--config`` YAML file ->
environment -> flags** (later wins):

- YAML key: the field name (``interval_s: 30``; dashes are accepted for underscores);
- environment: ``MLFOOTPRINT_<COMPONENT>_<FIELD>`` (``MLFOOTPRINT_OPERATOR_INTERVAL_S``), then
  the older names an :class:`Opt` lists; an empty variable is not given, except that the
  systematic one unsets an optional setting; a comma separates the items of a list;
- flag: ``--<field-with-dashes>`` unless an :class:`Opt` names others; a boolean gets
  ``--x``/``--no-x``, a list is repeatable. A secret has no flag (a command line is visible to
  every process on the node): environment or file only.

Errors name where the bad value came from -- the flag, the environment variable or the
file's key -- and the reason, never the value (it may be a secret); the command prints
``mlfootprint <component>: error: <where>: <reason>`` and exits 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["Opt", "Settings", "SettingsError"]

M = TypeVar("M", bound=BaseModel)

#: Kubernetes' service links (``<SERVICE>_PORT``, ``<SERVICE>_SERVICE_HOST``...): a Service
#: named mlfootprint-operator puts MLFOOTPRINT_OPERATOR_PORT=tcp://... into every pod beside it
_SERVICE_LINK = re.compile(r"(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PORT|_PROTO|_ADDR)?)?)")


class SettingsError(ValueError):
    """Invalid settings; each line of the message names where a bad value came from and why."""


class Opt:
    """How a setting is spelled outside the model: ``Annotated[float, Opt("--interval")]``."""

    __slots__ = ("env", "flags", "group", "metavar", "secret")

    def __init__(
        self, *flags: str, env: tuple[str, ...] = (), metavar: str | None = None, group: str | None = None, secret: bool = False
    ) -> None:
        self.flags, self.env, self.metavar, self.group, self.secret = flags, env, metavar, group, secret


def _show(value: Any) -> str:
    if value is None or value in ("", ()):
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Settings(Generic[M]):
    """The flags, environment, YAML keys and documentation of one component's model."""

    def __init__(self, model: type[M], component: str) -> None:
        self.model, self.component = model, component
        self.env_prefix = f"MLFOOTPRINT_{component.upper()}_"
        self.fields: dict[str, FieldInfo] = dict(model.model_fields)
        self.opts = {name: next((m for m in f.metadata if isinstance(m, Opt)), Opt()) for name, f in self.fields.items()}

    # -- names -----------------------------------------------------------------------------
    def flags(self, name: str) -> tuple[str, ...]:
        opt = self.opts[name]
        return () if opt.secret else opt.flags or ("--" + name.replace("_", "-"),)

    def envs(self, name: str) -> tuple[str, ...]:
        return (self.env_prefix + name.upper(), *self.opts[name].env)

    def _kind(self, name: str) -> tuple[bool, bool, tuple[str, ...]]:
        """(boolean, list, choices) of a field's type."""
        annotation = self.fields[name].annotation
        args = typing.get_args(annotation)
        choices = tuple(str(a) for a in args) if typing.get_origin(annotation) is typing.Literal else ()
        return annotation is bool, typing.get_origin(annotation) in (tuple, list), choices

    def _metavar(self, name: str) -> str:
        choices = self._kind(name)[2]
        if self.opts[name].metavar or choices:
            return self.opts[name].metavar or "{" + ",".join(choices) + "}"
        if name.endswith("_s"):
            return "SECONDS"
        if name.endswith("_w") or "_w_per_" in name:
            return "WATTS"
        return "N" if self.fields[name].annotation is int else "VALUE"

    def _help(self, name: str) -> str:
        field, opt = self.fields[name], self.opts[name]
        notes = [f"default: {_show(field.default)}"]
        if self.flags(name)[:1] != ("--" + name.replace("_", "-"),):
            notes.append(f"key {name}")
        notes += [f"${var}" for var in opt.env]
        return f"{(field.description or '').rstrip('.')} ({'; '.join(notes)})".replace("%", "%%")

    # -- command line ----------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--config FILE`` and one flag per setting; every flag defaults to "not given"."""
        parser.add_argument("--config", type=Path, metavar="FILE", help="YAML file of settings (layers: see the end)")
        groups: dict[str, argparse._ArgumentGroup] = {}
        for name in self.fields:
            flags, group = self.flags(name), self.opts[name].group
            if not flags:
                continue
            if group and group not in groups:
                groups[group] = parser.add_argument_group(group)
            target = groups[group] if group else parser
            is_bool, is_list, _ = self._kind(name)
            how: dict[str, Any] = (
                {"action": argparse.BooleanOptionalAction} if is_bool
                else {"action": "append" if is_list else "store", "metavar": self._metavar(name)}
            )
            target.add_argument(*flags, dest=name, default=None, help=self._help(name), **how)
        secrets = [f"  {' / '.join(self.envs(n))}: {self.fields[n].description}" for n in self.fields if not self.flags(n)]
        parser.epilog = "\n".join([
            "Settings are layered, later wins: defaults -> --config FILE (YAML; a key is the flag's name with",
            f"underscores, or the key named above) -> environment {self.env_prefix}<KEY> -> flags.",
            *(["Settings without a flag (environment or --config only):", *secrets] if secrets else []),
        ])

    def from_args(self, args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> M:
        """The settings from parsed flags, the process environment and ``--config``."""
        flags = {name: getattr(args, name, None) for name in self.fields}
        return self.load(getattr(args, "config", None), os.environ if environ is None else environ, flags)

    # -- layering --------------------------------------------------------------------------
    def load(
        self, file: Path | None = None, env: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
    ) -> M:
        """Merge defaults <- file <- env <- flags (a flag of None is not given) and validate."""
        values: dict[str, Any] = {}
        where: dict[str, str] = {}
        for key, value in _read_yaml(file).items() if file is not None else ():
            name = str(key).replace("-", "_")
            values[name], where[name] = value, f"{key} in {file}"
        env = env or {}
        for var, raw in env.items():  # unknown names of ours are refused below, as unknown keys
            key = var.removeprefix(self.env_prefix)
            if key != var and key.lower() not in self.fields and not _SERVICE_LINK.fullmatch(key):
                values[key.lower()], where[key.lower()] = raw, var
        for name in self.fields:
            unsets = self.fields[name].default is None  # an empty variable unsets an optional setting
            found = next((v for i, v in enumerate(self.envs(name)) if env.get(v) or (i == 0 and unsets and v in env)), None)
            if found is not None:  # the systematic name, else the first older name; empty: not given
                values[name], where[name] = self._from_env(name, env[found]), found
        for name, value in (flags or {}).items():
            if value is not None:
                values[name], where[name] = value, (self.flags(name) or (name,))[0]
        try:
            return self.model.model_validate(values)
        except ValidationError as exc:
            raise SettingsError("\n".join(dict.fromkeys(self._problem(e, where) for e in exc.errors()))) from None

    def fail(self, problems: object) -> int:
        """Print each problem as ``mlfootprint <component>: error: <problem>``; the exit status, 2."""
        for problem in str(problems).splitlines():
            print(f"mlfootprint {self.component}: error: {problem}", file=sys.stderr)
        return 2

    def _from_env(self, name: str, raw: str) -> Any:
        _, is_list, _ = self._kind(name)
        if is_list:
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        return None if raw == "" and self.fields[name].default is None else raw

    def _problem(self, err: Any, where: Mapping[str, str]) -> str:
        name = str(err["loc"][0]) if err["loc"] else ""
        label = where.get(name) or ((self.flags(name) or self.envs(name))[0] if name in self.fields else "settings")
        reason = "unknown setting" if err["type"] == "extra_forbidden" else str(err["msg"]).removeprefix("Value error, ")
        return f"{label}: {reason}"

    # -- documentation ---------------------------------------------------------------------
    def markdown(self) -> str:
        """The reference table of every setting (docs/<component>.md)."""
        rows = ["| key (YAML) | flag | environment | default | description |", "|---|---|---|---|---|"]
        for name, field in self.fields.items():
            flags, (is_bool, is_list, _) = self.flags(name), self._kind(name)
            names = [*flags, *(["--no-" + flags[0][2:]] if is_bool and flags else [])]
            flag = ", ".join(f"`{f}`" for f in names) + (" (repeatable)" if is_list else "") if flags else "none (secret)"
            env = "<br>".join(f"`{v}`" for v in self.envs(name))
            desc = " ".join((field.description or "").split()).replace("|", "\\|")
            rows.append(f"| `{name}` | {flag} | {env} | `{_show(field.default)}` | {desc} |")
        return "\n".join(rows) + "\n"


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(Path(file).read_text()) or {}
    except OSError as exc:
        raise SettingsError(f"--config {file}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:  # the problem and where, not the text (it may hold a secret)
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SettingsError(f"--config {file}: not valid YAML{at}: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    if not isinstance(doc, dict):
        raise SettingsError(f"--config {file}: expected a mapping of settings")
    return doc
