"""Zones' parts of node snapshots offered as casts: published once for every consumer that
waits for the same part, instead of once per node.

In a storm of full snapshots (every agent restarting at once) each node of a zone is sent
the same zone part, ~0.85 MB compressed at 10k services x 10 endpoints: 850 MB for 1,000
nodes, which the watcher writes and NATS carries (and, with TLS, encrypts and decrypts)
1,000 times. A consumer that accepts ``"cast"`` is answered with its own part only, naming
the cast that holds the zone's; it subscribes to the cast's subject and asks for it; the
watcher publishes each cast at most once per cast window for everyone who asked meanwhile
(docs/bus.md, section 9a).

A cast is identified by what its bytes depend on (epoch, zone, encoding, message size and
the snapshots' generation, which moves with every published change), so an id always names
the same bytes; the last :attr:`CastStore.keep` casts are kept.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable

from kpng.bus.codec import CastRef
from kpng.fanout.stats import FanoutStats

# a zone part smaller than this goes in the snapshot itself: a cast costs the consumer a
# subscription and a round trip more, worth it only for large views
CAST_MIN = 64 * 1024


class CastStore:
    """The casts offered lately, by id, as the messages to publish."""

    def __init__(self, stats: FanoutStats, keep: int = 8, min_size: int = CAST_MIN) -> None:
        self.stats = stats
        self.keep = keep
        self.min_size = min_size
        self._casts: OrderedDict[str, list[bytes]] = OrderedDict()

    def offer(self, key: Hashable, make: Callable[[str], list[bytes]]) -> CastRef:
        """The cast named by ``key``; ``make`` builds its messages (given its id) the
        first time."""
        id = cast_id(key)
        messages = self._casts.get(id)
        if messages is None:
            messages = self._casts[id] = make(id)
            self.stats.casts_offered += 1
            while len(self._casts) > self.keep:
                self._casts.popitem(last=False)
        else:
            self._casts.move_to_end(id)
        return CastRef(id, len(messages))

    def get(self, id: str) -> list[bytes] | None:
        """The messages of the cast ``id``; None if it is not (or no longer) kept."""
        return self._casts.get(id)


def cast_id(key: Hashable) -> str:
    """16 hex digits naming ``key`` (a subject token)."""
    return hashlib.blake2b(repr(key).encode(), digest_size=8).hexdigest()
