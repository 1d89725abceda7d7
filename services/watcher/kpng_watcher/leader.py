"""The election loop: reads and writes a Lease through a :class:`LeaseLock` every retry period.

:class:`LeaderElection` is what the publisher's gate asks (:meth:`LeaderElection.is_leader`,
which reads the clock each time: a leader paused past its renew deadline is no longer one
the instant it resumes, before its loop runs). :class:`FakeLeaseLock` is an in-memory lease
with the API server's optimistic concurrency, for tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from kpng.runtime.clock import SYSTEM, Clock
from kpng_watcher.election import Elector, LeaseRecord

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeaseError(Exception):
    """The Lease could not be read or written for a reason other than a lost race."""


class LeaseLock(Protocol):
    async def get(self) -> LeaseRecord | None:
        """The Lease, None if it does not exist; LeaseError if it cannot be read."""
        ...

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        """Create it; None if it exists already (another candidate was first)."""
        ...

    async def update(self, record: LeaseRecord) -> LeaseRecord | None:
        """Replace it if its resourceVersion is still ``record.resource_version``; else None."""
        ...


class FakeLeaseLock:
    """One in-memory Lease shared by candidates; ``fail`` makes every call raise."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.writes = 0
        self.fail = False
        self._rv = 0

    async def get(self) -> LeaseRecord | None:
        self._check()
        return self.record

    async def create(self, record: LeaseRecord) -> LeaseRecord | None:
        self._check()
        return None if self.record is not None else self._commit(record)

    async def update(self, record: LeaseRecord) -> LeaseRecord | None:
        self._check()
        if self.record is None or self.record.resource_version != record.resource_version:
            return None
        return self._commit(record)

    def _check(self) -> None:
        if self.fail:
            raise LeaseError("fake lease: unavailable")

    def _commit(self, record: LeaseRecord) -> LeaseRecord:
        self._rv += 1
        self.writes += 1
        self.record = replace(record, resource_version=str(self._rv))
        return self.record


def identity() -> str:
    """Hostname plus a random suffix: two processes on one host are two candidates."""
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


def default_namespace(env: dict[str, str] | None = None) -> str:
    """The pod's namespace (POD_NAMESPACE, or the service account's), else kube-system."""
    namespace = (os.environ if env is None else env).get("POD_NAMESPACE", "")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    return namespace or "kube-system"


LeadingHook = Callable[[bool], None]


class LeaderElection:
    """Runs one candidate; ``on_change(leading)`` is called when its role changes."""

    def __init__(
        self,
        lock: LeaseLock,
        elector: Elector,
        clock: Clock = SYSTEM,
        on_change: LeadingHook | None = None,
    ) -> None:
        self.lock = lock
        self.elector = elector
        self.clock = clock
        self.on_change = on_change
        self.leading = False
        self.transitions = 0

    def is_leader(self) -> bool:
        return self.elector.is_leader(self.clock.monotonic())

    async def run(self) -> None:
        """Until cancelled; then a leader hands the lease over (a standby need not wait for
        it to expire: a rolling update moves leadership in a retry period)."""
        log.info("candidate %s for the lease", self.elector.identity)
        try:
            while True:
                await self.attempt()
                self._report()
                await self.clock.sleep(self.elector.timing.retry_period)
        finally:
            await self.release()

    async def release(self) -> None:
        """Stop publishing (the gate closes first), then clear the lease if it is ours."""
        record = self.elector.release(self.clock.time())
        if record is None:
            return
        try:
            await asyncio.wait_for(self.lock.update(record), self.elector.timing.retry_period)
        except (LeaseError, TimeoutError) as exc:
            log.warning("lease not released (it will expire): %s", exc)
            return
        log.info("%s released the lease", self.elector.identity)

    async def attempt(self) -> None:
        """One read and, unless another holds an unexpired lease, one write."""
        started = self.clock.monotonic()
        try:
            self.elector.observe(await self.lock.get(), self.clock.monotonic())
            proposal = self.elector.proposal(self.clock.monotonic(), self.clock.time())
            if proposal is None:
                return
            write = self.lock.update if proposal.resource_version else self.lock.create
            written = await write(proposal)
        except LeaseError as exc:
            log.warning("lease: %s", exc)
            return
        if written is None:
            log.info("lease: lost the race to write it (another candidate was first)")
            self.elector.lost()
        else:
            self.elector.written(written, started)

    def _report(self) -> None:
        leading = self.is_leader()
        if leading == self.leading:
            return
        self.leading = leading
        self.transitions += 1
        if leading:
            log.info("%s is now the leader", self.elector.identity)
        else:
            log.warning(
                "%s is no longer the leader (holder: %r)",
                self.elector.identity,
                self.elector.holder or "none",
            )
        if self.on_change is not None:
            self.on_change(leading)
