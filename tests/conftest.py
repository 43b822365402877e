"""Top-level test configuration shared by every suite.

Cluster fixtures (real etcd + kube-apiserver) live in tests/cluster/conftest.py.
"""
