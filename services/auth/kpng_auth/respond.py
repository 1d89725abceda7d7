"""Answers nats-server's auth callout: review the credentials, decide, sign the answer.

One task per request (at most ``concurrency`` at once), so that a connection storm is
not answered one TokenReview after another.
"""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from kpng.bus.protocol import Bus, BusError, Subscription
from kpng.runtime.clock import SYSTEM, Clock
from kpng_auth.callout import SUBJECT, AuthRequest, parse_request, response
from kpng_auth.decide import Decision, Denial, Grant, Policy, decide_password, decide_token
from kpng_auth.natsjwt import JwtError, Signer, unverified_claims
from kpng_auth.reviewer import Reviewer, ReviewUnavailable

log = logging.getLogger(__name__)


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
    ) -> None:
        self.bus = bus
        self.reviewer = reviewer
        self.policy = policy
        self.signer = signer
        self.account = account  # the account granted users are placed in
        self.metrics = metrics or AuthMetrics(CollectorRegistry())
        self.clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: Subscription | None = None

    async def run(self) -> None:
        """Answer requests until cancelled."""
        self._sub = await self.bus.subscribe(SUBJECT, self._on_request)
        await self.bus.flush()
        log.info("answering auth callout on %s for account %s", SUBJECT, self.account)
        try:
            await asyncio.Event().wait()
        finally:
            await self._sub.unsubscribe()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_request(self, data: bytes, subject: str, reply: str) -> None:
        task = asyncio.get_running_loop().create_task(self.answer(data, reply))
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
