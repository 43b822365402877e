"""mlfootprint.accounting — pure, typed calculations (no I/O except reading packaged preset data).

Modules: ``units`` (constants, converters), ``factors`` (Factors and defaults with sources),
``presets`` (per-country presets from EcoLogits), ``inputs`` (Usage), ``footprint``
(compute_footprint, vectorised interval/sample integration), ``inference`` (breakeven,
efficiency, workload model), ``power`` (power-fluctuation statistics), ``equivalents``
(EPA equivalents), ``estimate_cli`` (`mlfootprint estimate`). See docs/methodology.md.
"""
