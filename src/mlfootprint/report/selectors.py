"""Kubernetes label selectors (`-l/--selector`), parsed and validated locally so that bad
ones fail before any read, and matched against snapshot rows.

Grammar as in `kubectl` / k8s.io/apimachinery `labels.Parse`: comma-separated requirements
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``. Keys are qualified names (optional DNS-subdomain prefix and ``/``);
values are at most 63 characters of ``[A-Za-z0-9_.-]`` beginning and ending alphanumeric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mlfootprint.report.period import UsageError

__all__ = ["Requirement", "Selector", "parse_selector", "validate_label_key"]

_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_REQ = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<nkey>[^\s=!,()]+)"
    r"|(?P<key>[^\s=!,()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s=!,()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$"
)


def validate_label_key(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"label key prefix {prefix!r} is not a DNS subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return f"label key {key!r} is not a qualified name (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends)"
    return None


def _check_value(flag: str, value: str) -> str:
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise UsageError(flag, f"label value {value!r} is invalid (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends)")
    return value


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "exists" | "!exists" | "=" | "!=" | "in" | "notin"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        return not present or value not in self.values  # "!=" and "notin", as Kubernetes does


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]
    text: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_selector(text: str, flag: str = "--selector") -> Selector:
    """Parse a label selector; :class:`UsageError` naming ``flag`` when it is malformed."""
    if not text.strip():
        raise UsageError(flag, "empty label selector")
    if text.count("(") != text.count(")"):
        raise UsageError(flag, f"unbalanced parentheses in {text!r}")
    reqs: list[Requirement] = []
    for part in _split(text):
        m = _REQ.match(part)
        if not m:
            raise UsageError(flag, f"cannot parse requirement {part.strip()!r} in {text!r}")
        key = m.group("nkey") or m.group("key")
        why = validate_label_key(key)
        if why:
            raise UsageError(flag, why)
        if m.group("not"):
            reqs.append(Requirement(key, "!exists"))
        elif m.group("op"):
            op = "!=" if m.group("op") == "!=" else "="
            reqs.append(Requirement(key, op, (_check_value(flag, m.group("value")),)))
        elif m.group("setop"):
            values = tuple(_check_value(flag, v.strip()) for v in m.group("values").split(","))
            if values == ("",):
                raise UsageError(flag, f"{m.group('setop')} needs at least one value in {part.strip()!r}")
            reqs.append(Requirement(key, m.group("setop"), values))
        else:
            reqs.append(Requirement(key, "exists"))
    return Selector(tuple(reqs), text)
