"""A warning that floods when an attacker or a broken peer repeats it: logged once per
interval, with the count of the ones held back since (975 lines for ~1,000 malformed
messages before)."""

from __future__ import annotations

import logging
from collections.abc import Callable


class RateLimitedWarning:
    def __init__(
        self, log: logging.Logger, monotonic: Callable[[], float], interval: float = 10.0
    ) -> None:
        self.log = log
        self.monotonic = monotonic
        self.interval = interval
        self.held = 0  # warnings not logged since the last one that was
        self._last: float | None = None

    def warning(self, message: str, *args: object) -> None:
        now = self.monotonic()
        if self._last is not None and now - self._last < self.interval:
            self.held += 1
            return
        if self.held:
            message += " (and %d more such warnings in the last %.0fs)"
            args = (*args, self.held, now - (self._last or now))
        self.log.warning(message, *args)
        self._last, self.held = now, 0
