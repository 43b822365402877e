"""Node exporter: GPU and host energy attributed to pods, exported to Prometheus.

Layers (after Kepler's device -> monitor -> exporter split):

* sources (``gpu_nvml``, ``gpu_dcgm``, ``gpu_sim``, ``host``, ``pods``, ``cgroups``): read
  devices behind narrow interfaces defined in :mod:`.model`;
* :mod:`.counters` and :mod:`.attribution`: pure arithmetic (counter deltas, energy
  conservation);
* :mod:`.monitor`: samples power, runs attribution each interval and publishes an immutable
  :class:`~.model.Snapshot`;
* :mod:`.collector` / :mod:`.server`: render the latest snapshot on each scrape.
"""
