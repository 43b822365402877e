"""The single `mlfootprint` command line, with one subcommand per component.

Each subcommand lives in its own module that exposes::

    HELP: str                                  # one line for `mlfootprint --help`
    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int   # exit status

Modules are imported lazily so that `mlfootprint estimate` does not pay for kopf or grpc.
Exit status 2 means bad input (argparse's convention), with a message naming the flag.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from mlfootprint import __version__

#: subcommand -> module implementing it
SUBCOMMANDS: dict[str, str] = {
    "estimate": "mlfootprint.accounting.estimate_cli",
    "exporter": "mlfootprint.exporter.cli",
    "operator": "mlfootprint.operator.cli",
    "report": "mlfootprint.report.cli",
    "dev-cluster": "mlfootprint.devcluster.cli",
    "crds": "mlfootprint.crd.cli",
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """Build the parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="mlfootprint",
        description=(
            "Meter the energy, carbon, water and embodied footprint of ML work on Kubernetes "
            "across development, training and inference."
        ),
    )
    parser.add_argument("--version", action="version", version=f"mlfootprint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in SUBCOMMANDS.items():
        if wanted != name:
            # Only the chosen subcommand's module is imported (and can fail to import).
            sub.add_parser(name, help=_SHORT_HELP[module_name])
            continue
        module = importlib.import_module(module_name)
        sp = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


_SHORT_HELP: dict[str, str] = {
    "mlfootprint.accounting.estimate_cli": "offline footprint calculator for a past or planned run",
    "mlfootprint.exporter.cli": "node exporter: GPU and host energy attributed to pods (Prometheus)",
    "mlfootprint.operator.cli": "kopf operator: TrainingRun/InferenceService footprint status",
    "mlfootprint.report.cli": "chargeback and lifecycle reports",
    "mlfootprint.devcluster.cli": "local control plane (etcd + kube-apiserver + kwok) for tests and the demo",
    "mlfootprint.crd.cli": "print or regenerate the CRDs from the typed models",
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    try:
        return int(args._module.run(args))
    except BrokenPipeError:
        # The reader went away (`mlfootprint ... | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
