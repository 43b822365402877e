"""Kubernetes timestamps (RFC 3339, UTC) to and from unix seconds, as the operator and the dev
cluster read and write them (status ``observedAt``, leases' ``renewTime``, pods' ``finishedAt``,
nodes' heartbeats). The report keeps its own pair (``report.model.parse_time``/``format_time``):
it reads times users type (a time without a zone is UTC there) and writes NaN as none."""

from __future__ import annotations

import datetime as dt


def format_micro(t_s: float) -> str:
    """Unix seconds as an RFC 3339 UTC time with microseconds (the API's ``MicroTime``, also a
    valid ``date-time``), e.g. ``2026-11-24T08:43:01.250000Z``."""
    return dt.datetime.fromtimestamp(t_s, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(text: object) -> float | None:
    """An RFC 3339 time as unix seconds; None for none, a non-string or an unreadable one (the
    text may come from an object someone else wrote: it is never trusted to parse)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if t.tzinfo is None:  # Kubernetes always writes a zone; a time without one is not ours to guess
        return None
    return t.timestamp()
