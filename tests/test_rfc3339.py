"""mlfootprint.rfc3339: the one reader and writer of Kubernetes timestamps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlfootprint import rfc3339


@given(st.floats(min_value=0, max_value=4e9))
def test_format_then_parse_round_trips_to_the_microsecond(t_s: float) -> None:
    text = rfc3339.format_micro(t_s)
    assert text.endswith("Z") and len(text) == len("2026-11-24T08:43:01.250000Z")
    assert rfc3339.parse(text) == pytest.approx(t_s, abs=1e-6)


@pytest.mark.parametrize(("text", "unix_s"), [
    ("2026-11-24T08:43:01Z", 1795509781.0),  # what the API server writes (Time)
    ("2026-11-24T08:43:01.5Z", 1795509781.5),
    ("2026-11-24T09:43:01+01:00", 1795509781.0),
])
def test_parses_what_kubernetes_writes(text: str, unix_s: float) -> None:
    assert rfc3339.parse(text) == unix_s


@pytest.mark.parametrize("text", [None, "", "yesterday", "2026-13-01T00:00:00Z", "2026-11-24T08:43:01", 12345, ["x"]])
def test_anything_unreadable_is_none_never_an_exception(text: object) -> None:
    # status fields can be written by anyone with access to the status subresource
    assert rfc3339.parse(text) is None
