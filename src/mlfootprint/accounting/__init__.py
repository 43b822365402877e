"""mlfootprint.accounting — pure, typed calculations (no I/O except reading packaged data).

Modules: ``units`` (constants, converters), ``factors`` (Factors and defaults with sources),
``presets`` (per-country presets from EcoLogits), ``inputs`` (Usage), ``footprint``
(compute_footprint, vectorised interval/sample integration), ``bom`` (node bill of materials
and per-component embodied factors), ``embodied`` (node presets, node embodied impact, charging
a usage by part: gpu, host), ``node_config`` (ConfigMap-shaped preset selection and overrides),
``inference`` (breakeven, efficiency), ``workload_model`` (e(Tin, Tout) fits), ``efficiency``
(GPU-only and facility figures, power percentiles), ``powercap`` (power-cap advice), ``power``
(power-fluctuation statistics), ``equivalents`` (EPA and published-accounting equivalents),
``estimate_cli`` (`mlfootprint estimate`). See docs/methodology.md.
"""
