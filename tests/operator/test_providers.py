"""Live carbon-intensity sources, contract-tested against their documented response shapes.

A local HTTP server (loopback) plays Electricity Maps v3, WattTime v3 and the Prometheus
HTTP API, answering with the JSON shapes their documentation shows:

* Electricity Maps (docs "API Documentation", Live carbon intensity):
  ``GET /v3/carbon-intensity/latest?zone=DE`` with header ``auth-token`` ->
  ``{"zone": "DE", "carbonIntensity": 302, "datetime": ..., "updatedAt": ..., "createdAt": ...,
  "emissionFactorType": "lifecycle", "isEstimated": ..., "estimationMethod": ...}`` (gCO2eq/kWh);
* WattTime v3 (docs.watttime.org): ``GET /login`` with HTTP basic auth -> ``{"token": JWT}``
  (valid 30 minutes; "if a data call returns HTTP 401, re-authenticate"); then
  ``GET /v3/forecast?region=..&signal_type=co2_moer`` with ``Authorization: Bearer JWT`` ->
  ``{"data": [{"point_time": ..., "value": ...}], "meta": {"region", "signal_type",
  "model": {"date"}, "units": "lbs_co2_per_mwh", "generated_at", ...}}``;
  ``/v3/signal-index`` answers ``units: "percentile"`` (0-100, not an emission rate);
* Prometheus ``GET /api/v1/query`` -> ``{"status": "success", "data": {"resultType": "vector",
  "result": [{"metric": {...}, "value": [t, "v"]}]}}``.

Failures (401, 429, 500, bad bodies) keep the last good value and report the source down;
nothing raises. Providers are off unless enabled (``--live-providers``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest

from mlfootprint.operator.energy.intensity import (
    LBS_PER_MWH_TO_G_PER_KWH,
    IntensityReader,
)
from mlfootprint.operator.factors_config import CarbonIntensitySpec, parse_factors
from mlfootprint.web.server import Server, reply

EM_LATEST = {
    "zone": "DE",
    "carbonIntensity": 302,
    "datetime": "2018-04-25T18:07:00.350Z",
    "updatedAt": "2018-04-25T18:07:01.000Z",
    "createdAt": "2018-04-25T18:07:01.000Z",
    "emissionFactorType": "lifecycle",
    "isEstimated": False,
    "estimationMethod": None,
}
WT_FORECAST = {
    "data": [
        {"point_time": "2024-01-01T00:00:00+00:00", "value": 871.0, "version": "3.2-2023-12-01"},
        {"point_time": "2024-01-01T00:05:00+00:00", "value": 860.0, "version": "3.2-2023-12-01"},
    ],
    "meta": {
        "data_point_period_seconds": 300,
        "region": "CAISO_NORTH",
        "warnings": [],
        "signal_type": "co2_moer",
        "model": {"date": "2023-03-01", "type": "binned_regression"},
        "units": "lbs_co2_per_mwh",
        "generated_at_period_seconds": 300,
        "generated_at": "2024-01-01T00:00:00+00:00",
    },
}
WT_SIGNAL_INDEX = {
    "data": [{"point_time": "2024-01-01T00:00:00+00:00", "value": 43.0}],
    "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "percentile",
             "model": {"date": "2023-03-01"}, "data_point_period_seconds": 300},
}
PROM_VECTOR = {
    "status": "success",
    "data": {"resultType": "vector", "result": [{"metric": {"__name__": "grid_ci", "zone": "DE"}, "value": [1700000000.0, "123.5"]}]},
}


@dataclass
class Request:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class FakeApi:
    """path -> (status, JSON body); every request is recorded."""

    routes: dict[str, tuple[int, Any]] = field(default_factory=dict)
    bearer: str | None = None  # when set, /v3/forecast answers 401 to any other token
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Server | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def route(self, path: str, status: int, body: Any) -> None:
        with self.lock:
            self.routes[path] = (status, body)

    def hits(self, path: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path, auth = environ["PATH_INFO"], environ.get("HTTP_AUTHORIZATION")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        with fake.lock:
            fake.requests.append(Request(path, parse_qs(environ.get("QUERY_STRING", "")), headers))
            status, body = fake.routes.get(path, (404, {"error": "not found"}))
            if path == "/v3/forecast" and fake.bearer and auth != f"Bearer {fake.bearer}":
                status, body = 401, {"error": "invalid or expired token"}
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return reply(start_response, f"{status} {HTTPStatus(status).phrase}", data, content_type="application/json")

    fake.server = Server(app).start("fake-api")
    yield fake
    fake.server.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _reader(api: FakeApi, clock: Clock, statuses: list[tuple[str, bool]] | None = None, **kw: Any) -> IntensityReader:
    values: dict[str, Any] = dict(
        providers_enabled=True, electricitymaps_url=api.base, electricitymaps_token="em-secret",
        watttime_url=api.base, watttime_username="wt-user", watttime_password="wt-pass",
        prometheus_url=api.base, max_age_s=30.0, timeout_s=5.0, clock=clock,
        on_status=(lambda s, ok: statuses.append((s, ok))) if statuses is not None else None,
    )
    values.update(kw)
    return IntensityReader(**values)


def _run(reader: IntensityReader, *steps: Any) -> list[float | None]:
    """Run reader.value(spec) for each spec (a callable step mutates the fake between reads)."""

    async def go() -> list[float | None]:
        out = []
        try:
            for s in steps:
                if callable(s):
                    s()
                else:
                    out.append(await reader.value(s))
        finally:
            await reader.close()
        return out

    return asyncio.run(go())


EM = CarbonIntensitySpec("provider", constant_g_per_kwh=300.0, provider="electricitymaps", zone="DE")
WT = CarbonIntensitySpec("provider", constant_g_per_kwh=300.0, provider="watttime", zone="CAISO_NORTH")


# --- Electricity Maps ---------------------------------------------------------------------


def test_electricitymaps_latest_parsed_with_auth_token_header(api: FakeApi) -> None:
    api.route("/v3/carbon-intensity/latest", 200, EM_LATEST)
    statuses: list[tuple[str, bool]] = []
    [v] = _run(_reader(api, Clock(), statuses), EM)
    assert v == 302.0  # gCO2eq/kWh as published
    [req] = api.hits("/v3/carbon-intensity/latest")
    assert req.headers["auth-token"] == "em-secret"
    assert req.query["zone"] == ["DE"]
    assert statuses == [("intensity:electricitymaps", True)]


def test_electricitymaps_is_read_once_per_max_age(api: FakeApi) -> None:
    api.route("/v3/carbon-intensity/latest", 200, EM_LATEST)
    clock = Clock()

    def later() -> None:
        clock.t += 31.0
        api.route("/v3/carbon-intensity/latest", 200, {**EM_LATEST, "carbonIntensity": 250.5})

    values = _run(_reader(api, clock), EM, EM, later, EM)
    assert values == [302.0, 302.0, 250.5]
    assert len(api.hits("/v3/carbon-intensity/latest")) == 2


@pytest.mark.parametrize("status", [401, 429, 500])
def test_electricitymaps_http_errors_keep_last_good_value(api: FakeApi, status: int) -> None:
    api.route("/v3/carbon-intensity/latest", 200, EM_LATEST)
    clock = Clock()
    statuses: list[tuple[str, bool]] = []
    reader = _reader(api, clock, statuses)

    def fail() -> None:
        clock.t += 31.0
        api.route("/v3/carbon-intensity/latest", status, {"message": "error", "status": status})

    def recover() -> None:
        clock.t += 31.0
        api.route("/v3/carbon-intensity/latest", 200, {**EM_LATEST, "carbonIntensity": 99})

    values = _run(reader, EM, fail, EM, recover, EM)
    assert values == [302.0, 302.0, 99.0]  # last good kept while failing, then the new value
    assert statuses == [("intensity:electricitymaps", True), ("intensity:electricitymaps", False), ("intensity:electricitymaps", True)]
    assert reader.errors["intensity:electricitymaps"] is None


def test_electricitymaps_failure_without_a_good_value_gives_none(api: FakeApi) -> None:
    """None lets the refresh use the ConfigMap's fallback (or the default)."""
    api.route("/v3/carbon-intensity/latest", 500, "upstream error")
    reader = _reader(api, Clock())
    assert _run(reader, EM) == [None]
    assert "500" in (reader.errors["intensity:electricitymaps"] or "")


@pytest.mark.parametrize(
    "body",
    [{**EM_LATEST, "carbonIntensity": None}, {"zone": "DE"}, "<html>not json</html>", {**EM_LATEST, "carbonIntensity": -5}],
)
def test_electricitymaps_unusable_bodies_are_refused(api: FakeApi, body: Any) -> None:
    api.route("/v3/carbon-intensity/latest", 200, body)
    reader = _reader(api, Clock())
    assert _run(reader, EM) == [None]
    assert reader.errors["intensity:electricitymaps"]


def test_electricitymaps_url_from_the_configmap_spec_wins(api: FakeApi) -> None:
    api.route("/v3/carbon-intensity/latest", 200, EM_LATEST)
    spec = parse_factors(
        {"carbonIntensity": json.dumps({"provider": {"name": "electricitymaps", "zone": "DE", "url": api.base}, "fallback": 300})}
    ).carbon_intensity
    assert spec is not None
    reader = _reader(api, Clock(), electricitymaps_url="http://127.0.0.1:9")  # nothing listens there
    assert _run(reader, spec) == [302.0]


# --- WattTime --------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_watttime_login_then_forecast_in_lbs_per_mwh(api: FakeApi) -> None:
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_FORECAST)
    clock = Clock()

    def later() -> None:
        clock.t += 31.0

    values = _run(_reader(api, clock), WT, later, WT)
    # 871 lbs/MWh x 453.59237 g/lb / 1000 kWh/MWh = 395.08795 g/kWh (the current point, data[0])
    assert values == [pytest.approx(871.0 * 0.45359237, rel=1e-12)] * 2
    assert LBS_PER_MWH_TO_G_PER_KWH == 0.45359237
    [login] = api.hits("/login")  # the token is reused
    assert login.headers["authorization"] == _basic("wt-user", "wt-pass")
    reqs = api.hits("/v3/forecast")
    assert len(reqs) == 2
    for r in reqs:
        assert r.headers["authorization"] == "Bearer jwt-1"
        assert r.query["region"] == ["CAISO_NORTH"] and r.query["signal_type"] == ["co2_moer"]


def test_watttime_expired_token_logs_in_again_and_retries(api: FakeApi) -> None:
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_FORECAST)
    api.bearer = "jwt-1"
    clock = Clock()
    statuses: list[tuple[str, bool]] = []

    def expire() -> None:  # 30 minutes later: jwt-1 has expired, /login hands out jwt-2
        clock.t += 1800.0
        api.bearer = "jwt-2"
        api.route("/login", 200, {"token": "jwt-2"})
        api.route("/v3/forecast", 200, {**WT_FORECAST, "data": [{"point_time": "2024-01-01T00:30:00+00:00", "value": 500.0}]})

    values = _run(_reader(api, clock, statuses), WT, expire, WT)
    assert values == [pytest.approx(871.0 * LBS_PER_MWH_TO_G_PER_KWH), pytest.approx(500.0 * LBS_PER_MWH_TO_G_PER_KWH)]
    assert len(api.hits("/login")) == 2
    assert [r.headers["authorization"] for r in api.hits("/v3/forecast")] == ["Bearer jwt-1", "Bearer jwt-1", "Bearer jwt-2"]
    assert statuses == [("intensity:watttime", True), ("intensity:watttime", True)]


def test_watttime_bad_credentials_keep_last_good_value(api: FakeApi) -> None:
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_FORECAST)
    clock = Clock()
    statuses: list[tuple[str, bool]] = []
    reader = _reader(api, clock, statuses)

    def revoke() -> None:
        clock.t += 31.0
        api.route("/login", 403, {"error": "bad credentials"})
        api.route("/v3/forecast", 401, {"error": "token expired"})

    values = _run(reader, WT, revoke, WT)
    assert values == [pytest.approx(871.0 * LBS_PER_MWH_TO_G_PER_KWH)] * 2
    assert statuses[-1] == ("intensity:watttime", False)
    assert "403" in (reader.errors["intensity:watttime"] or "")


@pytest.mark.parametrize("status", [429, 500])
def test_watttime_rate_limit_and_server_errors_keep_last_good_value(api: FakeApi, status: int) -> None:
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_FORECAST)
    clock = Clock()
    reader = _reader(api, clock)

    def fail() -> None:
        clock.t += 31.0
        api.route("/v3/forecast", status, {"error": "slow down"})

    values = _run(reader, WT, fail, WT)
    assert values == [pytest.approx(871.0 * LBS_PER_MWH_TO_G_PER_KWH)] * 2
    assert str(status) in (reader.errors["intensity:watttime"] or "")
    assert len(api.hits("/login")) == 1  # only a 401 causes a new login


def test_watttime_percentile_signal_is_not_taken_as_an_emission_rate(api: FakeApi) -> None:
    """A /v3/signal-index-shaped answer (units percentile) must not become g/kWh."""
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_SIGNAL_INDEX)
    reader = _reader(api, Clock())
    assert _run(reader, WT) == [None]
    assert "percentile" in (reader.errors["intensity:watttime"] or "")


# --- off by default ---------------------------------------------------------------------------


def test_providers_are_off_by_default(api: FakeApi) -> None:
    from mlfootprint.operator.config import OperatorConfig

    api.route("/v3/carbon-intensity/latest", 200, EM_LATEST)
    api.route("/login", 200, {"token": "jwt-1"})
    api.route("/v3/forecast", 200, WT_FORECAST)
    assert OperatorConfig().live_providers is False
    assert IntensityReader().providers_enabled is False
    reader = _reader(api, Clock(), providers_enabled=False)
    assert _run(reader, EM, WT) == [None, None]  # the ConfigMap fallback / default applies
    assert api.requests == []  # no network call at all


def test_prometheus_query_works_without_live_providers(api: FakeApi) -> None:
    api.route("/api/v1/query", 200, PROM_VECTOR)
    spec = CarbonIntensitySpec("prometheus", constant_g_per_kwh=300.0, query='grid_ci{zone="DE"}')
    reader = _reader(api, Clock(), providers_enabled=False)
    assert _run(reader, spec) == [123.5]
    [req] = api.hits("/api/v1/query")
    assert req.query["query"] == ['grid_ci{zone="DE"}']


# --- Prometheus (fake HTTP API; tests/operator/test_prometheus_mode.py uses a real one) -------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"status": "success", "data": {"resultType": "vector", "result": []}}, None),
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}, None),
        (503, "unavailable", None),
        (200, {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "NaN"]}]}}, None),
    ],
)
def test_prometheus_query_errors_and_empty_results(api: FakeApi, status: int, body: Any, expected: float | None) -> None:
    spec = CarbonIntensitySpec("prometheus", constant_g_per_kwh=300.0, query="grid_ci")
    api.route("/api/v1/query", status, body)
    assert _run(_reader(api, Clock()), spec) == [expected]


def test_prometheus_failure_keeps_last_good_value(api: FakeApi) -> None:
    spec = CarbonIntensitySpec("prometheus", constant_g_per_kwh=300.0, query="grid_ci")
    api.route("/api/v1/query", 200, PROM_VECTOR)
    clock = Clock()
    statuses: list[tuple[str, bool]] = []

    def fail() -> None:
        clock.t += 31.0
        api.route("/api/v1/query", 500, "boom")

    assert _run(_reader(api, clock, statuses), spec, fail, spec) == [123.5, 123.5]
    assert statuses == [("intensity:prometheus", True), ("intensity:prometheus", False)]


def test_unreachable_source_is_not_a_crash() -> None:
    reader = IntensityReader(providers_enabled=True, electricitymaps_url="http://127.0.0.1:9", timeout_s=2.0)
    assert _run(reader, EM) == [None]
    assert reader.errors["intensity:electricitymaps"]
