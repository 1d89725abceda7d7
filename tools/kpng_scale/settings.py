"""What one bench-scale run measures: sizes, rates and time limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    nodes: int = 1000
    services: int = 10_000
    endpoints: int = 10
    rate: float = 100.0
    duration: float = 30.0
    warmup: float = 3.0  # churn just after the initial sync, reported apart
    processes: int = 2  # one per core here; ~500 compressed views (0.85 MB) fit a connection
    coalesce_ms: float = 100.0
    snapshot_timeout: float = 60.0
    sync_timeout: float = 300.0
    probe_changes: int = 20
    workdir: Path | None = None
    failover: bool = True  # the failover phase, last (kpng_scale.failover)
    # a standby leads this long after the leader's kill: the lease duration (15 s), as a
    # killed leader's lease is taken over lease_duration after its last renewal
    lease_wait: float = 15.0
    secure: bool = True  # NATS with kpng's roles, passwords and TLS, as deployed
