"""Regenerate the committed Python stubs for the kubelet device plugin v1beta1 API (the fake GPU plugin).

Usage: ``python -m mlfootprint.devcluster.deviceplugin.regenerate [OUT_DIR]`` (needs the
``grpcio-tools`` test extra). Writes ``api_pb2.py``, ``api_pb2.pyi`` and ``api_pb2_grpc.py``
next to ``api.proto`` unless OUT_DIR is given (the regeneration test uses a temp dir).
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SRC_ROOT = PACKAGE_DIR.parents[2]  # .../src
PROTO_REL = "mlfootprint/devcluster/deviceplugin/api.proto"


def regenerate(out_root: Path | None = None) -> Path:
    """Run protoc; returns the directory holding the generated files."""
    from grpc_tools import protoc  # test/build-time dependency only

    root = out_root if out_root is not None else SRC_ROOT
    root.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{SRC_ROOT}",
            f"--python_out={root}",
            f"--pyi_out={root}",
            f"--grpc_python_out={root}",
            str(SRC_ROOT / PROTO_REL),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    return root / Path(PROTO_REL).parent


if __name__ == "__main__":  # pragma: no cover
    print(regenerate(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
