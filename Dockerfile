# Container image for the exporter and the operator (one image, two commands):
#   mlfootprint exporter ...   (DaemonSet)
#   mlfootprint operator ...   (Deployment)
# With a container engine:  docker build -t ghcr.io/mlfootprint/mlfootprint:0.1.0 .
# Without one (no registry, no daemon): `make image` (hack/image/build.sh) builds the same
# dependency set on Debian's Python 3.11 into _out/mlfootprint-<version>.oci.tar for
# `docker load` / `podman load` / `skopeo copy`. Both install ONLY the runtime lock
# (requirements.lock, hash-checked; test tools live in requirements-dev.lock):
# tests/realnode/test_image.py checks that they install the same packages.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/mlfootprint \
 && /opt/mlfootprint/bin/pip install --no-cache-dir --require-hashes -r requirements.lock \
 && /opt/mlfootprint/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11-slim
LABEL org.opencontainers.image.source="https://github.com/mlfootprint/mlfootprint" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/mlfootprint /opt/mlfootprint
ENV PATH=/opt/mlfootprint/bin:$PATH PYTHONUNBUFFERED=1
# Runs as an unprivileged user; the exporter reads host files through read-only mounts.
USER 65534:65534
ENTRYPOINT ["mlfootprint"]
CMD ["--help"]
