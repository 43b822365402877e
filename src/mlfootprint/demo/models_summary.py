"""The methodology's models as the demo shows them (pure: run statuses in, text lines out).

After the ``kubectl get`` table the demo prints, for the final training run, its embodied
impact by part (GPUs, hosts), the power swings of its checkpoints, its per-GPU power
percentiles and the power-cap advice; for the InferenceService its efficiency figures and
the fitted per-request energy model e(Tin, Tout) (docs/operator.md, docs/methodology.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["models_lines"]


def _g(d: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def _num(x: Any, digits: int = 4) -> str:
    return "–" if x is None else f"{float(x):.{digits}g}"


def training_lines(name: str, st: Mapping[str, Any]) -> list[str]:
    lines = [f"  {name}:"]
    carbon = st.get("carbon") or {}
    lines.append(
        f"    embodied {_num(carbon.get('embodiedKg'))} kgCO2e = GPUs {_num(carbon.get('embodiedGpuKg'))} + hosts "
        f"{_num(carbon.get('embodiedHostKg'))} ({', '.join(_g(st, 'factors', 'embodiedNodes') or ['?'])} bill of materials)"
    )
    power = st.get("power") or {}
    lines.append(
        f"    {power.get('swings', 0)} power swings; per-GPU power p50/p90/p99 {_num(power.get('p50W'))}/"
        f"{_num(power.get('p90W'))}/{_num(power.get('p99W'))} W of a {_num(power.get('limitW'))} W limit"
    )
    cap = st.get("powerCap") or {}
    if cap.get("status") == "recommend":
        lines.append(
            f"    power-cap advice: {_num(cap.get('recommendedCapW'))} W saves ~{_num(cap.get('energySavedPct'), 3)} % GPU energy "
            f"for +{_num(cap.get('timeAddedPct'), 3)} % time ({_num(cap.get('co2eSavedKg'), 3)} kgCO2e so far)"
        )
    elif cap:
        lines.append(f"    power-cap advice: none ({cap.get('reason', cap.get('status'))})")
    return lines


def serving_lines(name: str, st: Mapping[str, Any]) -> list[str]:
    inf = st.get("inference") or {}
    lines = [
        f"  {name}:",
        (
            f"    {_num(inf.get('gpuJoulesPerToken'))} GPU J/token, {_num(inf.get('joulesPerToken'))} facility J/token, "
            f"{_num(inf.get('kWhPer1kRequests'))} kWh per 1,000 requests"
        ),
    ]
    wm = inf.get("workloadModel")
    if wm:
        lines.append(
            f"    e(Tin, Tout) = {_num(wm['a0'])}·Tin + {_num(wm['a1'])}·Tout + {_num(wm['a2'])}·Tin·Tout GPU J per request "
            f"(R² {_num(wm['r2'], 2)}, {wm['intervals']} intervals)"
        )
    else:
        lines.append("    e(Tin, Tout): not enough intervals with requests yet")
    return lines


def models_lines(figures: Mapping[str, Mapping[str, Any]], final: str, serving: str) -> list[str]:
    """Lines for ``TrainingRun/<final>`` and ``InferenceService/<serving>`` in ``figures``
    (kind/name -> status)."""
    lines = ["Models of the methodology (kubectl get ... -o yaml shows them in .status):"]
    st = figures.get(f"TrainingRun/{final}")
    if st:
        lines += training_lines(final, st)
    st = figures.get(f"InferenceService/{serving}")
    if st:
        lines += serving_lines(serving, st)
    return lines
