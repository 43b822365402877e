"""Handler modules: each registered in :mod:`mlfootprint.operator.main` by one decorator."""
