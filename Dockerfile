# Container image for the exporter and the operator (one image, two commands):
#   mlfootprint exporter ...   (DaemonSet)
#   mlfootprint operator ...   (Deployment)
# Built by release CI elsewhere (no container engine runs on the development machines):
#   docker build -t ghcr.io/mlfootprint/mlfootprint:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/mlfootprint \
 && /opt/mlfootprint/bin/pip install --no-cache-dir -r requirements.lock \
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
