"""Per-request energy model e(Tin, Tout) = a0*Tin + a1*Tout + a2*Tin*Tout (joules per request).

Source: the Cambridge energy-aware LLM routing poster (METHODOLOGY §5): per model and GPU, a
least-squares fit without intercept over per-request measurements, published fits reaching
R² 0.96-0.98 for 7B-70B models.

Goodness of fit, one basis for both figures — **centred** (against the mean-only model):

* ``R² = 1 - SS_res / SS_tot`` with ``SS_tot = Σ w (e - ē)²`` — the ordinary R² that
  scikit-learn's ``r2_score`` and most papers report; this is the one comparable with the
  poster's 0.96-0.98 (an uncentred R² of a no-intercept fit is almost always close to 1 for
  energies far from zero, so it would not be);
* ``F = ((SS_tot - SS_res) / (p - 1)) / (SS_res / (n - p))`` with p = 3, i.e.
  ``F = (R² / 2) / ((1 - R²) / (n - 3))`` — the same comparison as R², expressed as a
  statistic. Since the model has no intercept, the mean-only model is not nested in it: read F
  as a descriptive ratio, not as an exact test; R² (and F) are negative when the fit is worse
  than predicting the mean. F is None for n = 3 or an exact fit.

Two estimators:

* :func:`fit_workload_model` — per-request data (Tin, Tout, energy), as the poster had;
* :func:`fit_workload_model_from_intervals` — what an InferenceService's counters give:
  per interval the energy attributed to the service, the sums of input and output tokens and
  the request count. With per-interval means m_in = ΣTin/R, m_out = ΣTout/R, ē = E/R the
  model becomes ē = a0*m_in + a1*m_out + a2*(ΣTin*Tout)/R, and the last term is not observable
  from sums: we use m_in*m_out, exact only when Tin and Tout do not co-vary within an interval
  (ΣTin*Tout / R = m_in*m_out + cov). Rows are weighted by R (a mean of R requests has 1/R of
  the variance). Limits (docs/methodology.md §5): interval means vary much less than single
  requests, so many intervals with different request mixes are needed; the interval energy
  includes the idle/static power of the GPU, which a model without intercept spreads into the
  coefficients; requests straddling interval boundaries blur the sums (use intervals much
  longer than a request).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "IntervalAggregate",
    "UnderdeterminedError",
    "WorkloadModel",
    "WorkloadStats",
    "fit_workload_model",
    "fit_workload_model_from_intervals",
    "request_energy_j",
]

_P = 3  # coefficients


def request_energy_j(coefficients: tuple[float, float, float], tokens_in: float, tokens_out: float) -> float:
    """e(Tin, Tout) = a0*Tin + a1*Tout + a2*Tin*Tout for one request, joules.

    ValueError for negative or non-finite token counts.
    """
    for name, value in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    a0, a1, a2 = coefficients
    return float(a0 * tokens_in + a1 * tokens_out + a2 * tokens_in * tokens_out)


class UnderdeterminedError(ValueError):
    """Too few (or collinear) observations to fit the workload model."""


class WorkloadModel(BaseModel):
    """A fitted e(Tin, Tout) (joules per request, no intercept); see the module docstring for
    the goodness-of-fit basis (centred, comparable with the poster)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    a0_j_per_input_token: float
    a1_j_per_output_token: float
    a2_j_per_token_product: float
    r_squared: float
    f_statistic: float | None
    n: int = Field(description="observations: requests (per-request fit) or intervals (interval fit)")
    basis: Literal["centred"] = "centred"
    estimator: Literal["requests", "intervals"] = "requests"
    requests: int = Field(default=0, description="requests behind the fit")
    fitted_at_s: float | None = Field(default=None, description="Unix time of the fit")

    @property
    def r2(self) -> float:
        return self.r_squared

    def predict(self, tokens_in: npt.ArrayLike, tokens_out: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Predicted joules per request for each (Tin, Tout)."""
        tin = np.asarray(tokens_in, dtype=np.float64)
        tout = np.asarray(tokens_out, dtype=np.float64)
        return np.asarray(
            self.a0_j_per_input_token * tin + self.a1_j_per_output_token * tout + self.a2_j_per_token_product * tin * tout
        )

    def predict_one(self, tokens_in: float, tokens_out: float) -> float:
        """Predicted joules of one request; ValueError for negative token counts."""
        coefficients = (self.a0_j_per_input_token, self.a1_j_per_output_token, self.a2_j_per_token_product)
        return request_energy_j(coefficients, tokens_in, tokens_out)


def _weighted_fit(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], w: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], float, float | None]:
    """Weighted least squares; (coefficients, centred R², centred F). Raises on rank < 3."""
    n = y.size
    if n < _P:
        raise UnderdeterminedError(f"the workload model has 3 coefficients and needs at least 3 observations, got {n}")
    sw = np.sqrt(w)
    coef, _, rank, _ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
    if rank < _P:
        raise UnderdeterminedError(
            f"observations do not determine the 3 coefficients (design rank {rank} < 3): "
            "vary both input and output token counts independently"
        )
    resid = y - x @ coef
    ss_res = float(np.sum(w * resid**2))
    y_bar = float(np.sum(w * y) / np.sum(w))
    ss_tot = float(np.sum(w * (y - y_bar) ** 2))
    if ss_tot > 0:
        r2 = 1.0 - ss_res / ss_tot
    else:
        r2 = 1.0 if ss_res == 0 else 0.0
    tol = 1e-12 * max(float(np.sum(w * y**2)), 1e-300)
    f_stat = None if n == _P or ss_res <= tol or ss_tot <= 0 else ((ss_tot - ss_res) / (_P - 1)) / (ss_res / (n - _P))
    return np.asarray(coef, dtype=np.float64), r2, f_stat


def _finite_non_negative(name: str, arr: npt.NDArray[np.float64]) -> None:
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0")


def fit_workload_model(
    tokens_in: npt.ArrayLike, tokens_out: npt.ArrayLike, energy_j: npt.ArrayLike, *, fitted_at_s: float | None = None
) -> WorkloadModel:
    """Least-squares fit from per-request data (Cambridge routing poster, METHODOLOGY §5).

    Raises UnderdeterminedError with fewer than 3 observations or when [Tin, Tout, Tin*Tout]
    has rank < 3 (e.g. every request has the same Tin); ValueError for bad inputs.
    """
    tin = np.asarray(tokens_in, dtype=np.float64)
    tout = np.asarray(tokens_out, dtype=np.float64)
    y = np.asarray(energy_j, dtype=np.float64)
    if not (tin.ndim == tout.ndim == y.ndim == 1 and tin.shape == tout.shape == y.shape):
        raise ValueError("tokens_in, tokens_out and energy_j must be 1-D arrays of equal length")
    for name, arr in (("tokens_in", tin), ("tokens_out", tout), ("energy_j", y)):
        _finite_non_negative(name, arr)
    x = np.column_stack([tin, tout, tin * tout]) if y.size else np.zeros((0, _P))
    coef, r2, f_stat = _weighted_fit(x, y, np.ones_like(y))
    return WorkloadModel(
        a0_j_per_input_token=float(coef[0]),
        a1_j_per_output_token=float(coef[1]),
        a2_j_per_token_product=float(coef[2]),
        r_squared=r2,
        f_statistic=f_stat,
        n=int(y.size),
        estimator="requests",
        requests=int(y.size),
        fitted_at_s=fitted_at_s,
    )


class IntervalAggregate(BaseModel):
    """What an InferenceService's counters give for one interval: the energy attributed to it
    (J) and the sums of input tokens, output tokens and requests completed in the interval."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    energy_j: float = Field(ge=0)
    tokens_in: float = Field(ge=0)
    tokens_out: float = Field(ge=0)
    requests: float = Field(ge=0)


def fit_workload_model_from_intervals(
    intervals: Sequence[IntervalAggregate], *, fitted_at_s: float | None = None
) -> WorkloadModel:
    """Weighted least-squares fit of e(Tin, Tout) from per-interval aggregates (module docstring:
    per-request means weighted by the request count, cross term m_in*m_out). Intervals without
    requests carry no information about per-request energy and are skipped. R² and F are on
    the per-request-mean scale, weighted, centred. Raises UnderdeterminedError when fewer than
    3 intervals have requests or their means do not vary independently."""
    used = [iv for iv in intervals if iv.requests > 0]
    r = np.fromiter((iv.requests for iv in used), dtype=np.float64, count=len(used))
    m_in = np.fromiter((iv.tokens_in for iv in used), dtype=np.float64, count=len(used)) / np.where(r > 0, r, 1)
    m_out = np.fromiter((iv.tokens_out for iv in used), dtype=np.float64, count=len(used)) / np.where(r > 0, r, 1)
    e_bar = np.fromiter((iv.energy_j for iv in used), dtype=np.float64, count=len(used)) / np.where(r > 0, r, 1)
    x = np.column_stack([m_in, m_out, m_in * m_out]) if used else np.zeros((0, _P))
    try:
        coef, r2, f_stat = _weighted_fit(x, e_bar, r)
    except UnderdeterminedError as exc:
        skipped = len(intervals) - len(used)
        note = f" ({skipped} interval(s) without requests skipped)" if skipped else ""
        raise UnderdeterminedError(f"{exc}{note}") from None
    return WorkloadModel(
        a0_j_per_input_token=float(coef[0]),
        a1_j_per_output_token=float(coef[1]),
        a2_j_per_token_product=float(coef[2]),
        r_squared=r2,
        f_statistic=f_stat,
        n=len(used),
        estimator="intervals",
        requests=int(round(float(r.sum()))),
        fitted_at_s=fitted_at_s,
    )


class WorkloadStats(BaseModel):
    """Running sufficient statistics of :func:`fit_workload_model_from_intervals`: constant
    size, additive, so a ledger can keep them for a service's whole life and fit at any time.

    With x = (m_in, m_out, m_in*m_out), y = ē and weight w = R per interval: ``sw = Σw``,
    ``swy = Σwy``, ``swyy = Σwy²``, ``swx = Σwx``, ``swxy = Σwxy``, and ``swxx`` the upper
    triangle of ``Σw x xᵀ`` (00, 01, 02, 11, 12, 22). The weighted least-squares solution of
    the normal equations ``(Σw x xᵀ) a = Σw x y`` and the residual and total sums of squares
    follow from them, so :meth:`fit` equals the fit over the list of intervals.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    n: int = Field(default=0, ge=0, description="intervals with requests")
    sw: float = Field(default=0.0, ge=0)
    swy: float = 0.0
    swyy: float = Field(default=0.0, ge=0)
    swx: tuple[float, float, float] = (0.0, 0.0, 0.0)
    swxx: tuple[float, float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    swxy: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def add(self, interval: IntervalAggregate) -> WorkloadStats:
        """The statistics with one more interval (intervals without requests carry no
        information about per-request energy and leave them unchanged)."""
        if interval.requests <= 0:
            return self
        w = interval.requests
        m_in, m_out, y = interval.tokens_in / w, interval.tokens_out / w, interval.energy_j / w
        x = (m_in, m_out, m_in * m_out)
        xx = (x[0] * x[0], x[0] * x[1], x[0] * x[2], x[1] * x[1], x[1] * x[2], x[2] * x[2])
        return WorkloadStats(
            n=self.n + 1,
            sw=self.sw + w,
            swy=self.swy + w * y,
            swyy=self.swyy + w * y * y,
            swx=tuple(a + w * b for a, b in zip(self.swx, x, strict=True)),
            swxx=tuple(a + w * b for a, b in zip(self.swxx, xx, strict=True)),
            swxy=tuple(a + w * b * y for a, b in zip(self.swxy, x, strict=True)),
        )

    def fit(self, *, fitted_at_s: float | None = None) -> WorkloadModel:
        """The weighted least-squares fit; UnderdeterminedError with fewer than 3 intervals
        with requests or when their means do not vary independently."""
        if self.n < _P:
            raise UnderdeterminedError(f"the workload model has 3 coefficients and needs at least 3 intervals with requests, got {self.n}")
        a, b, c, d, e, f = self.swxx
        xtx = np.array([[a, b, c], [b, d, e], [c, e, f]], dtype=np.float64)
        xty = np.asarray(self.swxy, dtype=np.float64)
        scale = np.sqrt(np.clip(np.diag(xtx), 1e-300, None))
        scaled = xtx / np.outer(scale, scale)
        if np.linalg.matrix_rank(scaled, tol=1e-9) < _P:
            raise UnderdeterminedError(
                "observations do not determine the 3 coefficients: vary both input and output token counts independently"
            )
        coef = np.linalg.solve(scaled, xty / scale) / scale
        ss_res = max(float(self.swyy - 2.0 * coef @ xty + coef @ xtx @ coef), 0.0)
        ss_tot = max(float(self.swyy - self.swy * self.swy / self.sw), 0.0) if self.sw > 0 else 0.0
        r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
        tol = 1e-12 * max(self.swyy, 1e-300)
        f_stat = None if self.n == _P or ss_res <= tol or ss_tot <= 0 else ((ss_tot - ss_res) / (_P - 1)) / (ss_res / (self.n - _P))
        return WorkloadModel(
            a0_j_per_input_token=float(coef[0]),
            a1_j_per_output_token=float(coef[1]),
            a2_j_per_token_product=float(coef[2]),
            r_squared=r2,
            f_statistic=f_stat,
            n=self.n,
            estimator="intervals",
            requests=int(round(self.sw)),
            fitted_at_s=fitted_at_s,
        )
