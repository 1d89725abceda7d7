"""The process's own metrics, as every Prometheus client exports them by default (kube-proxy's
``process_*`` among them): CPU seconds, resident memory, open fds, start time, and Python's
collector and version. kpng's services keep their metrics in registries of their own (never
the global one), so each service's ``main`` adds these to its registry once.

A process's ``process_cpu_seconds_total`` counts its own threads only. An agent also spends CPU
in child processes: the forked child that writes a dual-stack full sync's second family on
another CPU (see docs/dataplane.md), and ``nft`` where it is used. Their CPU, once they have
exited and been waited for, is ``kpng_process_children_cpu_seconds_total``; the process's whole
cost is the sum of the two.
"""

from __future__ import annotations

import resource
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class ChildrenCPU(Collector):
    """``kpng_process_children_cpu_seconds_total``: user and system CPU of the process's
    children that have exited and been waited for (``getrusage(RUSAGE_CHILDREN)``)."""

    def collect(self) -> Iterator[Metric]:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        family = CounterMetricFamily(
            "kpng_process_children_cpu_seconds",
            "User and system CPU seconds of this process's exited child processes "
            "(a forked full sync's second family, nft runs)",
        )
        family.add_metric([], used.ru_utime + used.ru_stime)
        yield family


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Add the process's metrics (``process_*``, ``python_*``, children's CPU) to ``registry``."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(ChildrenCPU())
