"""A small, fast parser for the Prometheus text format, keeping only wanted families (pure).

The exporter's page can hold tens of thousands of series; the operator needs a handful of
``mlfootprint_pod_*`` families, so lines of other families are skipped before their labels
are parsed. Handles label value escapes (``\\\\``, ``\\"``, ``\\n``) and optional timestamps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator

__all__ = ["Sample", "parse_samples"]

Sample = tuple[str, dict[str, str], float]
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def _unescape(v: str) -> str:
    if "\\" not in v:
        return v
    return re.sub(r'\\[\\"n]', lambda m: _UNESCAPE[m.group(0)], v)


def _value(text: str) -> float:
    t = text.strip().split()
    if not t:
        raise ValueError("missing sample value")
    v = t[0]
    if v in ("+Inf", "Inf"):
        return math.inf
    if v == "-Inf":
        return -math.inf
    return float(v)


def parse_samples(text: str, names: Iterable[str]) -> Iterator[Sample]:
    """Yield (name, labels, value) for samples whose metric name is in ``names``."""
    wanted = frozenset(names)
    prefixes = tuple(wanted)
    for line in text.splitlines():
        if not line or line[0] == "#" or not line.startswith(prefixes):
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            if name not in wanted:
                continue
            end = line.rfind("}")
            if end == -1:
                continue
            labels = {m.group(1): _unescape(m.group(2)) for m in _LABEL.finditer(line, brace + 1, end)}
            rest = line[end + 1 :]
        else:
            name = line[:space] if space != -1 else line
            if name not in wanted:
                continue
            labels = {}
            rest = line[space + 1 :] if space != -1 else ""
        try:
            yield name, labels, _value(rest)
        except ValueError:
            continue
