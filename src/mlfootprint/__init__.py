"""mlfootprint: energy, carbon, water and embodied footprint of ML work on Kubernetes."""

#: The one version of a release: the package (pyproject reads it), the chart's version and
#: appVersion, the image tag and the CRDs' app.kubernetes.io/version label are stamped from it
#: (`make version V=X.Y.Z`; hack/release/version.py --check fails on any that disagrees).
__version__ = "0.2.0"
