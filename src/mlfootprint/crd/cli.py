"""`mlfootprint crds`: print the CRDs, or write them to a directory."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlfootprint.crd.generate import all_crds, render, write

HELP = "print or regenerate the CRDs (TrainingRun, InferenceService) from the typed models"
DESCRIPTION = """\
Print the mlfootprint.io/v1alpha1 CustomResourceDefinitions generated from the pydantic
models (the one source of truth), or write them to directories.

examples:
  mlfootprint crds | kubectl apply -f -
  mlfootprint crds --out crds --out charts/mlfootprint/crds
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        action="append",
        type=Path,
        metavar="DIR",
        help="write one YAML file per CRD into DIR (repeatable) instead of printing to stdout",
    )


def run(args: argparse.Namespace) -> int:
    if args.out:
        for path in write(args.out):
            print(path)
        return 0
    sys.stdout.write("---\n".join(render(crd) for crd in all_crds().values()))
    return 0
