"""A simulated vLLM ``/metrics`` endpoint for the demo's InferenceService.

The counters are the ones vLLM itself exports (docs "Production Metrics"), which the
operator's ``vllm`` engine preset reads:

* ``vllm:request_success_total`` (requests finished),
* ``vllm:prompt_tokens_total`` (input tokens),
* ``vllm:generation_tokens_total`` (output tokens),

plus the gauge ``vllm:num_requests_running``. Traffic follows the same diurnal request-rate
profile as the exporter's simulated ``inference`` GPUs (:func:`mlfootprint.exporter.gpu_sim.request_rate`,
lowest ~03:00, highest ~15:00 UTC) on the same accelerated clock (``t0 + factor * elapsed``),
so GPU power and request counters rise and fall together.

The request mix drifts like the simulated GPUs' load (:func:`mlfootprint.exporter.gpu_sim.request_mix`:
mean prompt and output sizes vary independently), so the operator can fit the per-request
energy model e(Tin, Tout) from the counters. Both simulators use the same hour-anchored
simulated clock (:meth:`mlfootprint.exporter.gpu_sim.SimClock.hourly`).

The counters are closed-form integrals of the rate (deterministic and monotonic, whatever
the scrape timing). Paths:

* ``/metrics``: the whole service (all replicas);
* ``/pods/<pod>/metrics``: one replica's share (``1/replicas``), so that each serving pod can
  be annotated with its own URL (``mlfootprint.io/serving-metrics-url``) and the operator's
  per-pod sum is not double counted;
* ``/healthz``.

Run it alone: ``python -m mlfootprint.demo.servingsim --port 9880 --time-factor 1440``.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from wsgiref.types import StartResponse, WSGIEnvironment

from mlfootprint.exporter.gpu_sim import (
    MIX_AMPLITUDE,
    OUTPUT_MIX_PERIOD_S,
    OUTPUT_MIX_PHASE,
    PROMPT_MIX_PERIOD_S,
    SimClock,
    request_rate,
)
from mlfootprint.web.server import Server, reply

log = logging.getLogger(__name__)

DAY_S = 86400.0
#: request_rate(t) = RATE_MEAN + RATE_AMPLITUDE * sin(2*pi*(t/DAY - RATE_PHASE)) (see gpu_sim)
RATE_MEAN = 0.5
RATE_AMPLITUDE = 0.4
RATE_PHASE = 0.375
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_POD_PATH = re.compile(r"^/pods/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)/metrics$")


def cumulative_rate_s(t_s: float) -> float:
    """Integral of :func:`request_rate` from the epoch to ``t_s`` (seconds x normalised rate).

    d/dt [a*t - b*D/(2pi) * cos(2pi(t/D - p))] = a + b*sin(2pi(t/D - p)) = request_rate(t).
    """
    w = 2 * math.pi / DAY_S
    return RATE_MEAN * t_s - RATE_AMPLITUDE / w * math.cos(w * t_s - 2 * math.pi * RATE_PHASE)


def cumulative_mixed_rate_s(t_s: float, period_s: float, phase: float) -> float:
    """Integral of request_rate(t) * (1 + A sin(v t + phase)) from the epoch to ``t_s``,
    with v = 2pi / period (closed form; sin X sin Y = (cos(X-Y) - cos(X+Y)) / 2)."""
    w, v = 2 * math.pi / DAY_S, 2 * math.pi / period_s
    theta = 2 * math.pi * RATE_PHASE
    a, b, amp = RATE_MEAN, RATE_AMPLITUDE, MIX_AMPLITUDE
    return (
        cumulative_rate_s(t_s)
        - a * amp / v * math.cos(v * t_s + phase)
        + b * amp / 2 * (math.sin((w - v) * t_s - theta - phase) / (w - v) - math.sin((w + v) * t_s - theta + phase) / (w + v))
    )


@dataclass(frozen=True)
class TrafficProfile:
    """Simulated traffic of one served model (all replicas together)."""

    model: str = "llama-8b"
    peak_requests_per_s: float = 40.0
    prompt_tokens_per_request: float = 480.0
    output_tokens_per_request: float = 210.0
    mean_latency_s: float = 4.0

    def requests_between(self, t0_s: float, t1_s: float) -> float:
        """Requests served in [t0, t1] (simulated seconds): peak rate x integral of the profile."""
        return self.peak_requests_per_s * (cumulative_rate_s(t1_s) - cumulative_rate_s(t0_s))

    def tokens_between(self, t0_s: float, t1_s: float) -> tuple[float, float]:
        """(prompt, output) tokens of the requests served in [t0, t1], with the drifting mix."""
        def f(t: float, period: float, phase: float) -> float:
            return cumulative_mixed_rate_s(t, period, phase)

        prompt = f(t1_s, PROMPT_MIX_PERIOD_S, 0.0) - f(t0_s, PROMPT_MIX_PERIOD_S, 0.0)
        output = f(t1_s, OUTPUT_MIX_PERIOD_S, OUTPUT_MIX_PHASE) - f(t0_s, OUTPUT_MIX_PERIOD_S, OUTPUT_MIX_PHASE)
        return (
            self.peak_requests_per_s * self.prompt_tokens_per_request * prompt,
            self.peak_requests_per_s * self.output_tokens_per_request * output,
        )

    def running(self, t_s: float) -> float:
        """Requests in flight at ``t_s`` (Little's law: rate x latency)."""
        return self.peak_requests_per_s * request_rate(t_s) * self.mean_latency_s


def render(profile: TrafficProfile, start_s: float, now_s: float, share: float = 1.0) -> str:
    """Prometheus text of the vLLM counters for traffic from ``start_s`` to ``now_s``."""
    requests = share * profile.requests_between(start_s, now_s)
    labels = f'model_name="{profile.model}"'
    prompt, output = (share * x for x in profile.tokens_between(start_s, now_s))
    lines = [
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
        f'vllm:request_success_total{{finished_reason="stop",{labels}}} {math.floor(requests * 0.93)}',
        (
            f'vllm:request_success_total{{finished_reason="length",{labels}}} '
            f"{math.floor(requests) - math.floor(requests * 0.93)}"
        ),
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f"vllm:prompt_tokens_total{{{labels}}} {math.floor(prompt)}",
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
        "# TYPE vllm:generation_tokens_total counter",
        f"vllm:generation_tokens_total{{{labels}}} {math.floor(output)}",
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{labels}}} {share * profile.running(now_s):.1f}",
    ]
    return "\n".join(lines) + "\n"


def make_server(
    address: str, port: int, profile: TrafficProfile, clock: Callable[[], float], replicas: int = 1
) -> Server:
    """The HTTP server (not started); counters start at zero when it is made."""
    start_s = clock()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics" or _POD_PATH.match(path):
            body = render(profile, start_s, clock(), share=1.0 if path == "/metrics" else 1.0 / replicas)
            return reply(start_response, "200 OK", body.encode(), content_type=CONTENT_TYPE)
        if path == "/healthz":
            return reply(start_response, "200 OK", b"ok\n", content_type=CONTENT_TYPE)
        return reply(start_response, "404 Not Found", b"see /metrics or /pods/<pod>/metrics\n", content_type=CONTENT_TYPE)

    return Server(app, address, port)


def main(argv: list[str] | None = None) -> int:
    from mlfootprint.logs import configure

    p = argparse.ArgumentParser(prog="python -m mlfootprint.demo.servingsim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9880, help="listen port (default 9880)")
    p.add_argument("--time-factor", type=float, default=1440.0, help="clock acceleration (default 1440: a day a minute)")
    p.add_argument("--model", default="llama-8b", help="model_name label")
    p.add_argument("--peak-rps", type=float, default=40.0, help="requests per (simulated) second at the daily peak")
    p.add_argument("--replicas", type=int, default=1, help="serving pods sharing the traffic (/pods/<pod>/metrics)")
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    args = p.parse_args(argv)
    if args.time_factor <= 0:
        p.error("--time-factor: must be > 0")
    if args.replicas < 1:
        p.error("--replicas: must be >= 1")
    configure("info", args.log_format)
    profile = TrafficProfile(model=args.model, peak_requests_per_s=args.peak_rps)
    try:
        server = make_server(args.address, args.port, profile, SimClock.hourly(args.time_factor), args.replicas)
    except OSError as exc:
        print(f"servingsim: --port {args.port}: cannot listen on {args.address}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start("servingsim-http")
    log.info("simulated vLLM metrics listening",
             extra={"address": args.address, "port": server.port, "time_factor": args.time_factor,
                    "model": args.model, "peak_rps": args.peak_rps, "replicas": args.replicas})
    stop.wait()
    server.close()
    log.info("simulated vLLM metrics stopped")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
