"""Live carbon intensity: a Prometheus metric, or (opt-in) Electricity Maps / WattTime.

Values are cached for ``max_age_s`` per source, so one refresh cycle asks each source once.
Response shapes (contract-tested against a local server, tests/operator):

* Electricity Maps v3 ``GET /v3/carbon-intensity/latest?zone=Z`` with header ``auth-token``
  -> ``{"zone": Z, "carbonIntensity": 302, "datetime": ..., "emissionFactorType": ...}``
  (gCO2eq/kWh);
* WattTime v3 ``GET /login`` (HTTP basic) -> ``{"token": T}`` (a JWT valid 30 minutes); then
  ``GET /v3/forecast?region=R&signal_type=co2_moer&horizon_hours=0`` (Bearer T) ->
  ``{"data": [{"point_time": ..., "value": V}], "meta": {"units": "lbs_co2_per_mwh", ...}}``;
  V lbs/MWh x 0.45359237 = gCO2/kWh. WattTime's signal is the *marginal* emission rate.
  A data call answered 401 (token expired) logs in again and retries once (WattTime docs).
  ``/v3/signal-index`` is not used: its value is a 0-100 percentile, not an emission rate
  (a response whose ``meta.units`` is not an emission rate is refused).
* Prometheus ``GET /api/v1/query?query=Q`` -> ``{"status": "success", "data": {"resultType":
  "vector", "result": [{"value": [t, "v"]}]}}``; the first sample's value.

A source that fails (HTTP error such as 401/429/500, timeout, unexpected body) never fails the
refresh: the last good value of that source is kept (else None: the fallback applies), a
warning is logged, and ``on_status(source, ok)`` reports it (the operator exports it as
``mlfootprint_operator_energy_source_up{source="intensity:<kind>"}``).
"""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable

import aiohttp

from mlfootprint.operator.factors_config import CarbonIntensitySpec

__all__ = ["LBS_PER_MWH_TO_G_PER_KWH", "IntensityReader"]

log = logging.getLogger(__name__)

#: 1 lb = 453.59237 g (exact); per MWh -> per kWh divides by 1000.
LBS_PER_MWH_TO_G_PER_KWH = 0.45359237


class IntensityReader:
    def __init__(
        self,
        *,
        prometheus_url: str | None = None,
        providers_enabled: bool = False,
        electricitymaps_url: str = "https://api.electricitymap.org",
        electricitymaps_token: str | None = None,
        watttime_url: str = "https://api.watttime.org",
        watttime_username: str | None = None,
        watttime_password: str | None = None,
        max_age_s: float = 60.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_status: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.prometheus_url = prometheus_url
        self.providers_enabled = providers_enabled
        self.em_url = electricitymaps_url.rstrip("/")
        self.em_token = electricitymaps_token
        self.wt_url = watttime_url.rstrip("/")
        self.wt_user = watttime_username
        self.wt_password = watttime_password
        self._wt_token: str | None = None
        self._max_age_s = max_age_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._cache: dict[tuple[str, ...], tuple[float, float | None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._on_status = on_status
        #: source ("intensity:electricitymaps" ...) -> the last error, or None after a success
        self.errors: dict[str, str | None] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def value(self, spec: CarbonIntensitySpec) -> float | None:
        """The current gCO2e/kWh, or None (not live, disabled, or the source failed)."""
        if not spec.is_live:
            return None
        if spec.kind == "provider" and not self.providers_enabled:
            return None
        key = (spec.kind, spec.provider or "", spec.zone or "", spec.query or "", spec.url or "")
        hit = self._cache.get(key)
        now = self._clock()
        if hit is not None and now - hit[0] < self._max_age_s:
            return hit[1]
        source = f"intensity:{spec.provider if spec.kind == 'provider' else spec.kind}"
        try:
            if spec.kind == "prometheus":
                v = await self.prometheus_value(spec.query or "", spec.url or self.prometheus_url)
            elif spec.provider == "electricitymaps":
                v = await self.electricitymaps(spec.zone or "", spec.url or self.em_url)
            else:
                v = await self.watttime(spec.zone or "", spec.url or self.wt_url)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"carbon intensity must be a finite number >= 0, got {v}")
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, IndexError, TypeError) as e:
            log.warning("carbon intensity source failed; keeping its last good value", extra={"source": source, "error": str(e)})
            v = hit[1] if hit is not None else None
            self._report(source, f"{type(e).__name__}: {e}")
        else:
            self._report(source, None)
        self._cache[key] = (now, v)
        return v

    def _report(self, source: str, error: str | None) -> None:
        self.errors[source] = error
        if self._on_status is not None:
            self._on_status(source, error is None)

    async def prometheus_value(self, query: str, url: str | None) -> float | None:
        if not url:
            raise ValueError("no Prometheus URL for a prometheus carbon intensity")
        async with self._sess().get(f"{url.rstrip('/')}/api/v1/query", params={"query": query}) as r:
            r.raise_for_status()
            doc = await r.json()
        result = doc["data"]["result"]
        if not result:
            return None
        return float(result[0]["value"][1])

    async def electricitymaps(self, zone: str, base: str) -> float:
        headers = {"auth-token": self.em_token} if self.em_token else {}
        async with self._sess().get(
            f"{base.rstrip('/')}/v3/carbon-intensity/latest", params={"zone": zone}, headers=headers
        ) as r:
            r.raise_for_status()
            doc = await r.json()
        return float(doc["carbonIntensity"])

    async def _watttime_login(self, base: str) -> str:
        basic = base64.b64encode(f"{self.wt_user or ''}:{self.wt_password or ''}".encode()).decode()
        async with self._sess().get(f"{base}/login", headers={"Authorization": f"Basic {basic}"}) as r:
            r.raise_for_status()
            self._wt_token = str((await r.json())["token"])
        return self._wt_token

    async def watttime(self, region: str, base: str) -> float:
        base = base.rstrip("/")
        token = self._wt_token or await self._watttime_login(base)
        for attempt in (1, 2):
            async with self._sess().get(
                f"{base}/v3/forecast",
                params={"region": region, "signal_type": "co2_moer", "horizon_hours": "0"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                if r.status == 401 and attempt == 1:
                    self._wt_token = None  # expired (30 min): log in again, retry once
                else:
                    if r.status == 401:
                        self._wt_token = None
                    r.raise_for_status()
                    doc = await r.json()
                    break
            token = await self._watttime_login(base)
        units = (doc.get("meta") or {}).get("units", "lbs_co2_per_mwh")
        value = float(doc["data"][0]["value"])
        if units == "lbs_co2_per_mwh":
            return value * LBS_PER_MWH_TO_G_PER_KWH
        if units in ("g_co2_per_kwh", "kg_co2_per_mwh"):
            return value
        raise ValueError(f"unexpected WattTime units {units!r}")
