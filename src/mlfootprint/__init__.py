"""mlfootprint: energy, carbon, water and embodied footprint of ML work on Kubernetes."""

__version__ = "0.1.0"
