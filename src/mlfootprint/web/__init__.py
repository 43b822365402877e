"""Serving HTTP endpoints: prometheus_client's WSGI app for /metrics, a /healthz route, and
TLS and basic auth from a web-config file in the Prometheus exporter-toolkit format
(``tls_server_config``, ``basic_auth_users``), as node_exporter and dcgm-exporter take it."""

from mlfootprint.web.config import WebConfig, WebConfigError, WebConfigFile, load_web_config
from mlfootprint.web.server import Server, healthz, metrics_app, serve

__all__ = ["Server", "WebConfig", "WebConfigError", "WebConfigFile", "healthz", "load_web_config", "metrics_app", "serve"]
