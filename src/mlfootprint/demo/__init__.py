"""The one-command demo (`make demo`, `python -m mlfootprint.demo up|down|status`); docs/demo.md."""
