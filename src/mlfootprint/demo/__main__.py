"""`python -m mlfootprint.demo up|down|status` (run by `make demo` / `make demo-down`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DESCRIPTION = """\
The whole product on one machine, no GPU needed: a local Kubernetes control plane, the
exporter (simulated H100s, accelerated clock), the operator, and a sample project
(development sweep with failing runs, final training run, InferenceService under simulated
vLLM traffic). See docs/demo.md.

--node real: on a real worker node (containerd, kubelet, 8 fake GPUs through a device
plugin): the chart's exporter DaemonSet and operator Deployment run the image built here,
the project's pods are real containers (one-node project: 3 sweep runs). Needs root and
`make tools`. --node kwok: simulated (kwok) 8-GPU nodes, exporters and the operator as local
processes. --node auto (default): real where the machine allows it, else kwok, saying why.

  up      start everything (detached), drive the project through simulated time, print the
          kubectl table and the lifecycle report, and how to explore and stop
  down    stop every process the demo started and verify that none is left
  status  list the demo's processes (exit 1 unless all run)

Environment (read by hack/demo.sh): MLFOOTPRINT_DEMO_SHORT=1 (the CI variant),
MLFOOTPRINT_DEMO_PORT_BASE=N (exporters N.., operator N+10, vLLM sim N+20; 0 = free ports),
MLFOOTPRINT_DEMO_NODE=auto|real|kwok.
"""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not (value == 0 or 1024 <= value <= 65000):
        raise argparse.ArgumentTypeError(f"must be 0 (free ports) or 1024-65000, got {value}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from mlfootprint.demo.orchestrator import DEFAULT_PORT_BASE

    p = argparse.ArgumentParser(prog="python -m mlfootprint.demo", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--state-dir", type=Path, default=None,
                   help="state directory (default: $MLFOOTPRINT_CACHE/demo, i.e. ~/.cache/mlfootprint/demo)")
    p.add_argument("--short", action="store_true", default=None,
                   help="the shortened CI demo: fewer runs, one node, faster clock (env MLFOOTPRINT_DEMO_SHORT=1)")
    p.add_argument("--port-base", type=_port, default=None,
                   help=f"first loopback port (default {DEFAULT_PORT_BASE}; env MLFOOTPRINT_DEMO_PORT_BASE; 0 = free ports)")
    p.add_argument("--time-factor", type=_positive, default=None,
                   help="simulated clock acceleration (default from samples/demo/scenario.yaml: 1440, short 7200)")
    p.add_argument("--node", choices=["auto", "real", "kwok"], default=None,
                   help="where the workloads run: a real node, kwok nodes, or auto (real if the machine allows it; "
                        "env MLFOOTPRINT_DEMO_NODE; default auto)")
    p.add_argument("--operator-interval", type=_positive, default=2.0, help="operator refresh interval, s (default 2)")
    p.add_argument("--settle-timeout", type=_positive, default=120.0,
                   help="how long to wait for the operator's figures, s (default 120)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"],
                   help="log level of the orchestration's structured logs on stderr (default warning)")
    p.add_argument("--log-format", default="text", choices=["json", "text"])
    return p


def _log_to_file(path: Path) -> None:
    """Also keep the orchestration's structured logs (JSON lines, info and above) in the state directory."""
    from mlfootprint.logs import JsonFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    stderr_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for h in root.handlers:
        if h is not handler:
            h.setLevel(stderr_level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from mlfootprint.demo.orchestrator import Demo, DemoError, Options, default_state_dir, down, status
    from mlfootprint.demo.scenario import ScenarioError
    from mlfootprint.logs import configure

    configure(args.log_level, args.log_format)
    state_dir = (args.state_dir or default_state_dir()).absolute()
    if args.action in ("up", "down"):
        _log_to_file(state_dir / f"demo-{args.action}.log")
    try:
        if args.action == "down":
            down(state_dir)
            return 0
        if args.action == "status":
            return status(state_dir)
        short = args.short if args.short is not None else os.environ.get("MLFOOTPRINT_DEMO_SHORT", "") not in ("", "0")
        env_base = os.environ.get("MLFOOTPRINT_DEMO_PORT_BASE")
        port_base = args.port_base
        if port_base is None and env_base:
            try:
                port_base = _port(env_base)
            except argparse.ArgumentTypeError as e:
                print(f"mlfootprint demo: MLFOOTPRINT_DEMO_PORT_BASE: {e}", file=sys.stderr)
                return 2
        node = args.node or os.environ.get("MLFOOTPRINT_DEMO_NODE") or "auto"
        if node not in ("auto", "real", "kwok"):
            print(f"mlfootprint demo: MLFOOTPRINT_DEMO_NODE: must be auto, real or kwok, got {node!r}", file=sys.stderr)
            return 2
        opts = Options(state_dir=state_dir, short=short, node=node,
                       port_base=port_base if port_base is not None else Options.port_base,
                       time_factor=args.time_factor, operator_interval_s=args.operator_interval,
                       settle_timeout_s=args.settle_timeout)
        return Demo(opts).up()
    except (DemoError, ScenarioError) as e:
        logging.getLogger("mlfootprint.demo").debug("failed", exc_info=True)
        print(f"\nmlfootprint demo {args.action}: {e}", file=sys.stderr)
        if args.action == "up" and (state_dir / "logs").is_dir():
            print(f"(everything it started was stopped; logs in {state_dir / 'logs'})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; what was started is stopped (or run: make demo-down)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
