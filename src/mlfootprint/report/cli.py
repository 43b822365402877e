"""`mlfootprint report`: chargeback and lifecycle reports (docs/report.md)."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import sys
import time
from pathlib import Path

from mlfootprint.report.aggregate import Filters, Report, ReportOptions, build_report, parse_group_by
from mlfootprint.report.model import PHASES, SnapshotError, parse_time, table_to_snapshot, write_snapshot
from mlfootprint.report.period import UsageError, parse_period
from mlfootprint.report.progress import progress
from mlfootprint.report.selectors import parse_selector
from mlfootprint.report.sources import ClusterSource, PrometheusSource, SnapshotSource, Source, SourceError

HELP = "chargeback and lifecycle reports"
DESCRIPTION = """\
Energy, carbon (location-based; market-based apart), water and embodied impact per team,
namespace, label, phase, model or node pool, and the lifecycle of each model
(development, training, inference, breakeven) for a period.

Sources: the cluster's TrainingRun/InferenceService statuses (default), a snapshot file
(--from-file, written by --export), optionally with Prometheus for exact period figures.

examples:
  mlfootprint report --month 2026-11 --group-by label:team --price-per-kWh 0.12
  mlfootprint report --since 2026-11-01 --until 2026-11-15 -n nlp -f markdown
  mlfootprint report --month 2026-11 --prometheus-url http://prometheus:9090 --idle share
  mlfootprint report --export nov.json && mlfootprint report --from-file nov.json -f html -o nov.html
"""

log = logging.getLogger(__name__)

FORMATS = ("table", "csv", "json", "markdown", "html")
_EXT = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html", ".txt": "table"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("source")
    src.add_argument("--from-file", type=Path, metavar="FILE", help="read a snapshot (written by --export) instead of the cluster")
    src.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for the cluster source (default: in-cluster, $KUBECONFIG, ~/.kube/config)")
    src.add_argument("--context", metavar="NAME", help="kubeconfig context")
    src.add_argument("--prometheus-url", metavar="URL", help="Prometheus with the operator's and exporter's metrics: exact period figures and idle energy")
    src.add_argument("--export", type=Path, metavar="FILE", help=(
        "write the rows read (snapshot format v1) to FILE; the report is printed only when --format or --output is also given"))

    sel = parser.add_argument_group("selection")
    sel.add_argument("-n", "--namespace", action="append", default=[], metavar="NS", help="only these namespaces (repeatable or comma-separated; default all)")
    sel.add_argument("-A", "--all-namespaces", action="store_true", help="all namespaces (the default)")
    sel.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, e.g. team=nlp,env!=dev")
    sel.add_argument("--phase", metavar="PHASES", help=f"only these phases (comma-separated: {', '.join(PHASES)})")
    sel.add_argument("--model", action="append", default=[], metavar="NAME", help="only this model (repeatable)")

    per = parser.add_argument_group("period (half-open; naive times are UTC)")
    per.add_argument("--since", metavar="TIME", help="start, ISO 8601 date or date-time")
    per.add_argument("--until", metavar="TIME", help="end (exclusive; a date means the end of that day)")
    per.add_argument("--month", metavar="YYYY-MM", help="a calendar month (UTC)")

    agg = parser.add_argument_group("aggregation")
    agg.add_argument("--group-by", default="namespace", metavar="DIMS",
                     help="comma-separated: namespace, phase, model, node-pool, kind, label:KEY (default namespace)")
    agg.add_argument("--idle", choices=("separate", "share"), default="separate",
                     help="unattributed (idle) energy as its own row or shared by GPU-hours (default separate)")
    agg.add_argument("--price-per-kwh", "--price-per-kWh", type=float, metavar="PRICE", dest="price_per_kwh",
                     help="electricity price per facility kWh")
    agg.add_argument("--carbon-price-per-tonne", type=float, metavar="PRICE", help="internal carbon price per tCO2e (total CO2e)")
    agg.add_argument("--currency", default="", metavar="CODE", help="currency label for costs, e.g. EUR")
    agg.add_argument("--breakeven-basis", choices=("training+development", "training"), default="training+development",
                     help="upfront footprint that inference must equal (default training+development)")

    out = parser.add_argument_group("output")
    out.add_argument("-f", "--format", choices=FORMATS, help="output format (default: from --output's extension, else table)")
    out.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")
    out.add_argument("--view", choices=("chargeback", "lifecycle"), help="CSV only: which table (default chargeback)")
    out.add_argument("--width", type=int, metavar="COLS", help="table width (default: the terminal's, else 160)")
    out.add_argument("--now", metavar="TIME", help="treat TIME as now (end of open runs; reproducible reports)")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    out.add_argument("--log-level", default="warning", choices=("debug", "info", "warning", "error"),
                     help="log lines on stderr (default warning; info: what was read and written)")


def _namespaces(values: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            ns = part.strip()
            if not _DNS_LABEL.match(ns) or len(ns) > 63:
                raise UsageError("--namespace", f"{ns!r} is not a valid namespace name (RFC 1123 label)")
            out.append(ns)
    return tuple(dict.fromkeys(out))


def _price(flag: str, value: float | None) -> float | None:
    if value is not None and not (value >= 0 and value < float("inf")):
        raise UsageError(flag, f"must be a finite number >= 0, got {value}")
    return value


def _options(args: argparse.Namespace) -> tuple[Source, Filters, ReportOptions, str | None]:
    period = parse_period(args.since, args.until, args.month)
    namespaces = _namespaces(args.namespace)
    if args.all_namespaces and namespaces:
        raise UsageError("--all-namespaces", "cannot be combined with --namespace")
    selector = parse_selector(args.selector) if args.selector is not None else None
    phases: tuple[str, ...] = ()
    if args.phase is not None:
        phases = tuple(p.strip() for p in args.phase.split(","))
        bad = [p for p in phases if p not in PHASES]
        if bad:
            raise UsageError("--phase", f"unknown phase {bad[0]!r}; use {', '.join(PHASES)}")
    if any(not m.strip() for m in args.model):
        raise UsageError("--model", "empty model name")
    group_by = parse_group_by(args.group_by)
    fmt = args.format
    if fmt is None:
        fmt = _EXT.get(args.output.suffix.lower(), "table") if args.output else ("table" if not args.export else None)
    if args.view is not None and fmt != "csv":
        raise UsageError("--view", "only applies to --format csv")
    if args.width is not None and args.width < 40:
        raise UsageError("--width", f"must be at least 40 columns, got {args.width}")
    try:
        now_s = parse_time(args.now) if args.now else time.time()
    except ValueError:
        raise UsageError("--now", f"{args.now!r} is not an ISO 8601 date-time") from None
    if args.from_file is not None:
        for flag, value in (("--kubeconfig", args.kubeconfig), ("--context", args.context)):
            if value:
                raise UsageError(flag, "applies to the cluster source, not to --from-file")
        source: Source = SnapshotSource(args.from_file)
    else:
        source = ClusterSource(args.kubeconfig, args.context, namespaces, args.selector)
    if args.prometheus_url:
        if not re.match(r"^https?://[^\s/]+", args.prometheus_url):
            raise UsageError("--prometheus-url", f"{args.prometheus_url!r} is not an http(s) URL")
        if period.since_s is None:
            raise UsageError("--prometheus-url", "needs the start of the period: give --since or --month")
        source = PrometheusSource(args.prometheus_url, source, period, now_s)
    options = ReportOptions(
        group_by=group_by,
        idle=args.idle,
        price_per_kwh=_price("--price-per-kwh", args.price_per_kwh),
        carbon_price_per_tonne=_price("--carbon-price-per-tonne", args.carbon_price_per_tonne),
        currency=args.currency,
        breakeven_basis=args.breakeven_basis,
        now_s=now_s,
    )
    filters = Filters(namespaces=namespaces, selector=selector, phases=phases, models=tuple(m.strip() for m in args.model))
    return source, filters, options, fmt


def render(report_fmt: str, report: Report, *, view: str | None, width: int | None, color: bool) -> str:
    from mlfootprint.report import render as r

    if report_fmt == "html":
        from mlfootprint.report.html import render_html

        return render_html(report)
    if report_fmt == "csv":
        return r.render_csv(report, view or "chargeback")
    if report_fmt == "table":
        return r.render_table(report, width=width, color=color)
    return r.RENDERERS[report_fmt](report)


def run(args: argparse.Namespace) -> int:
    from mlfootprint.logs import configure  # noqa: PLC0415

    configure(args.log_level, "text")  # log lines to stderr, the report to stdout
    try:
        source, filters, options, fmt = _options(args)
    except UsageError as exc:
        print(f"mlfootprint report: error: {exc}", file=sys.stderr)
        return 2
    try:
        with progress(sys.stderr, quiet=args.quiet) as tasks:
            table = source.load(tasks)
    except SnapshotError as exc:
        print(f"mlfootprint report: error: --from-file: {exc}", file=sys.stderr)
        return 2
    except SourceError as exc:
        print(f"mlfootprint report: error: {exc}", file=sys.stderr)
        return 1
    notes = list(getattr(source, "notes", []))
    if args.export is not None:
        document = table_to_snapshot(table, source=table.meta.get("source") or {}, generated_at=options.now_s)
        try:
            write_snapshot(args.export, document)
        except OSError as exc:
            print(f"mlfootprint report: error: --export: cannot write {args.export}: {exc.strerror}", file=sys.stderr)
            return 1
        log.info("snapshot written", extra={"path": str(args.export), "rows": len(table)})
        if fmt is None:
            return 0
    assert fmt is not None
    report = build_report(table, parse_period(args.since, args.until, args.month), options, filters, notes=notes)
    to_tty = args.output is None and sys.stdout.isatty()
    width = args.width or (shutil.get_terminal_size((160, 24)).columns if to_tty else 160)
    color = to_tty and fmt == "table" and not os.environ.get("NO_COLOR")  # https://no-color.org
    text = render(fmt, report, view=args.view, width=width, color=color)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        args.output.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"mlfootprint report: error: --output: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
