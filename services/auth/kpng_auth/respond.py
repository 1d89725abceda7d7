"""Answers nats-server's auth callout: review the credentials, decide, sign the answer.

One task per request (at most ``concurrency`` at once), so that a connection storm is
not answered one TokenReview after another. The subscription's state goes to a
:class:`~kpng_auth.readiness.CalloutReadiness` (``/readyz``): confirmed by a flush once
subscribed, and again after every reconnection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kpng.bus.protocol import Bus, BusError, Subscription
from kpng.runtime.clock import SYSTEM, Clock
from kpng_auth.callout import SUBJECT, AuthRequest, parse_request, response
from kpng_auth.decide import Decision, Denial, Grant, Policy, decide_password, decide_token
from kpng_auth.natsjwt import JwtError, Signer, unverified_claims
from kpng_auth.readiness import CalloutReadiness
from kpng_auth.reviewer import Reviewer, ReviewUnavailable

log = logging.getLogger(__name__)
CONFIRM_RETRY = 1.0  # seconds between flushes that did not confirm the subscription


class AuthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.granted = Counter(
            "kpng_auth_granted_total",
            "Connections authorized, by kind (node, role)",
            ["kind"],
            registry=registry,
        )
        self.denied = Counter(
            "kpng_auth_denied_total",
            "Connections refused, by reason",
            ["reason"],
            registry=registry,
        )
        self.seconds = Histogram(
            "kpng_auth_decision_seconds",
            "Time to answer one authorization request (TokenReview included)",
            registry=registry,
        )
        self.ready = Gauge(
            "kpng_auth_ready",
            "1 when subscribed to the auth callout on a live NATS connection (/readyz 200)",
            registry=registry,
        )


class Responder:
    def __init__(
        self,
        bus: Bus,
        reviewer: Reviewer,
        policy: Policy,
        signer: Signer,
        account: str,
        *,
        metrics: AuthMetrics | None = None,
        clock: Clock = SYSTEM,
        concurrency: int = 64,
        readiness: CalloutReadiness | None = None,
    ) -> None:
        self.bus = bus
        self.reviewer = reviewer
        self.policy = policy
        self.signer = signer
        self.account = account  # the account granted users are placed in
        self.metrics = metrics or AuthMetrics(CollectorRegistry())
        self.clock = clock
        if readiness is None:  # given a signer and a policy: loaded
            readiness = CalloutReadiness()
            readiness.loaded()
        self.readiness = readiness
        self.metrics.ready.set_function(lambda: float(readiness.check().ready))
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None

    async def run(self) -> None:
        """Answer requests until cancelled."""
        listeners = self.bus.listeners
        listeners.disconnected.append(self.readiness.disconnected)
        listeners.reconnected.append(self._reconnected)
        try:
            epoch = self.readiness.connected()
            self._sub = await self.bus.subscribe(SUBJECT, self._on_request)
            await self._confirm(epoch)
            await asyncio.Event().wait()
        finally:
            self.readiness.stopping()
            listeners.disconnected.remove(self.readiness.disconnected)
            listeners.reconnected.remove(self._reconnected)
            if self._sub is not None:
                await self._sub.unsubscribe()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _reconnected(self) -> None:
        """The client subscribed again on its new connection: confirm it, in a task."""
        self._spawn(self._confirm(self.readiness.reconnected()))

    async def _confirm(self, epoch: int) -> None:
        """Flush until the server has confirmed the subscription made in ``epoch``, or a
        lost or regained connection made that moot (a newer epoch confirms for itself)."""
        while self.readiness.current(epoch):
            try:
                await self.bus.flush()
            except BusError as exc:
                log.warning("auth callout subscription not confirmed: %s", exc)
                await self.clock.sleep(CONFIRM_RETRY)
                continue
            if self.readiness.subscribed(epoch):
                log.info("answering auth callout on %s for account %s", SUBJECT, self.account)

    def _on_request(self, data: bytes, subject: str, reply: str) -> None:
        self._spawn(self.answer(data, reply))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, data: bytes, reply: str) -> None:
        started = time.perf_counter()
        async with self._slots:
            try:
                request = parse_request(data)
            except JwtError as exc:
                self.metrics.denied.labels("malformed-request").inc()
                log.warning("auth callout: request dropped: %s", exc)
                return
            decision = await self.decide(request)
            now = int(self.clock.time())
            if isinstance(decision, Grant):
                body = response(self.signer, request, now, grant=decision, account=self.account)
                self.metrics.granted.labels("node" if decision.node else "role").inc()
                log.info(
                    "authorized %s as %s until %d",
                    request.client,
                    decision.name,
                    decision.expires,
                    extra={"node": decision.node, "client": request.client},
                )
            else:
                body = response(self.signer, request, now, error=decision.reason)
                self.metrics.denied.labels(decision.reason).inc()
                log.warning(
                    "refused %s: %s (%s)",
                    request.client,
                    decision.reason,
                    decision.detail,
                    extra={"client": request.client, "reason": decision.reason},
                )
            try:
                await self.bus.publish(reply, body)
            except BusError as exc:
                log.warning("auth callout: answer to %s lost: %s", request.client, exc)
        self.metrics.seconds.observe(time.perf_counter() - started)

    async def decide(self, request: AuthRequest) -> Decision:
        now = self.clock.time()
        if request.token:
            try:
                review = await self.reviewer.review(request.token, self.policy.audience)
            except ReviewUnavailable as exc:
                return Denial("review-unavailable", str(exc))
            expiry = unverified_claims(request.token).get("exp")
            expiry = expiry if isinstance(expiry, int) else None
            return decide_token(review, expiry, now, self.policy)
        if request.user:
            return decide_password(request.user, request.password, now, self.policy)
        return Denial("no-credentials", "neither a token nor a user")
