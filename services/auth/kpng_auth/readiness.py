"""Whether this kpng-auth answers the auth callout: what ``/readyz`` says.

Ready only once the issuer key and users are loaded, the process is connected to NATS and
the server has confirmed its callout subscription (a flush after subscribing); not ready
again when the connection drops, until it is back and the subscription confirmed anew. A
rolling update then waits for a new replica to answer before it stops an old one.

Pure: the responder reports the connection's events; each loss or regain of the connection
opens a new epoch, and a confirmation counts only for the epoch it was asked in (a flush
that straddles a disconnection proves nothing).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from kpng.runtime.metrics import PageAnswer


class Phase(enum.Enum):
    LOADING = "loading the issuer key and users"
    CONNECTING = "not yet connected to NATS"
    SUBSCRIBING = "connected to NATS, subscribing to the auth callout"
    READY = "answering the auth callout"
    RECONNECTING = "disconnected from NATS, reconnecting"
    RESUBSCRIBING = "reconnected to NATS, subscribing to the auth callout again"
    STOPPING = "shutting down"


@dataclass(frozen=True, slots=True)
class ReadyCheck:
    ready: bool
    reason: str  # the phase, said for an operator


class CalloutReadiness:
    """The readiness of the callout responder, from the events of its connection."""

    def __init__(self) -> None:
        self.phase = Phase.LOADING
        self.epoch = 0

    def loaded(self) -> None:
        """The issuer key and the users are read."""
        if self.phase is Phase.LOADING:
            self.phase = Phase.CONNECTING

    def connected(self) -> int:
        """Connected and about to subscribe; the epoch to confirm the subscription in."""
        return self._enter(Phase.SUBSCRIBING)

    def disconnected(self) -> None:
        if self.phase is not Phase.STOPPING:
            self._enter(Phase.RECONNECTING)

    def reconnected(self) -> int:
        """Connected again (the client subscribes again); the epoch to confirm in."""
        return self._enter(Phase.RESUBSCRIBING)

    def subscribed(self, epoch: int) -> bool:
        """The server confirmed the subscription asked for in ``epoch``: ready, unless the
        connection was lost or regained since. True if that made it ready."""
        if self.current(epoch):
            self.phase = Phase.READY
            return True
        return False

    def stopping(self) -> None:
        self.phase = Phase.STOPPING

    def current(self, epoch: int) -> bool:
        """Whether ``epoch`` still waits for its confirmation."""
        return epoch == self.epoch and self.phase in (Phase.SUBSCRIBING, Phase.RESUBSCRIBING)

    def check(self) -> ReadyCheck:
        return ReadyCheck(self.phase is Phase.READY, self.phase.value)

    def _enter(self, phase: Phase) -> int:
        if self.phase is not Phase.STOPPING:
            self.epoch += 1
            self.phase = phase
        return self.epoch


def readyz(check: ReadyCheck) -> PageAnswer:
    """``/readyz``: 200 when ready, 503 otherwise, with the reason in a small JSON body."""
    body = json.dumps({"ready": check.ready, "reason": check.reason}).encode() + b"\n"
    return PageAnswer(200 if check.ready else 503, body, "application/json")
