"""Write one image of an OCI image layout as a single archive that every common tool loads.

Usage: python hack/image/archive.py LAYOUT_DIR TAG REFERENCE OUT.tar

The archive is what `docker save` writes since Docker 25: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/...``) plus Docker's ``manifest.json`` pointing at the same
blobs. So ``docker load`` (any version: it reads manifest.json), ``podman load``,
``skopeo copy oci-archive:OUT.tar`` / ``docker-archive:OUT.tar`` and containerd's
``ctr images import`` all read it, and all name the image REFERENCE
(``index.json`` carries it as ``io.containerd.image.name``, the tag as
``org.opencontainers.image.ref.name``; ``manifest.json`` as ``RepoTags``). Standard library
only; blobs are copied, not recompressed, so digests stay those umoci wrote.
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    return layout / "blobs" / algo / hexdigest


def _descriptor(layout: Path, tag: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    for desc in index.get("manifests", []):
        if (desc.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag:
            return dict(desc)
    raise SystemExit(f"archive.py: tag {tag!r} not found in {layout}/index.json")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def write_archive(layout: Path, tag: str, reference: str, out: Path) -> None:
    desc = _descriptor(layout, tag)
    if desc.get("mediaType") != MANIFEST:
        raise SystemExit(f"archive.py: {tag} is a {desc.get('mediaType')}, expected an OCI image manifest")
    manifest = json.loads(_blob(layout, desc["digest"]).read_bytes())
    blobs = [desc["digest"], manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    desc["annotations"] = {
        "io.containerd.image.name": reference,
        "org.opencontainers.image.ref.name": reference.rsplit(":", 1)[-1] if ":" in reference.rsplit("/", 1)[-1] else "latest",
    }
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]}
    docker_manifest = [
        {
            "Config": "blobs/" + manifest["config"]["digest"].replace(":", "/"),
            "RepoTags": [reference],
            "Layers": ["blobs/" + layer["digest"].replace(":", "/") for layer in manifest["layers"]],
        }
    ]
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        _add_bytes(tar, "manifest.json", json.dumps(docker_manifest).encode())
        seen: set[str] = set()
        for digest in blobs:
            if digest in seen:
                continue
            seen.add(digest)
            info = tar.gettarinfo(str(_blob(layout, digest)), arcname="blobs/" + digest.replace(":", "/"))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o644
            with _blob(layout, digest).open("rb") as fh:
                tar.addfile(info, fh)
    tmp.replace(out)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    layout, tag, reference, out = argv
    write_archive(Path(layout), tag, reference, Path(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
