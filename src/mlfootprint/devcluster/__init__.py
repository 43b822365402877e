"""mlfootprint.devcluster: a real local Kubernetes control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, kwok) on loopback, for tests and the demo.

See docs/dev-cluster.md.
"""

from mlfootprint.devcluster.binaries import KUBERNETES_VERSION, KWOK_VERSION, Binaries, MissingBinaryError
from mlfootprint.devcluster.cluster import GPU_RESOURCE, DevCluster, DevClusterError

__all__ = [
    "GPU_RESOURCE",
    "KUBERNETES_VERSION",
    "KWOK_VERSION",
    "Binaries",
    "DevCluster",
    "DevClusterError",
    "MissingBinaryError",
]
