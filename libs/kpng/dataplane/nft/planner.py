"""From node views to transactions, for one family: the pure half of the nftables backend."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain, islice

from kpng.dataplane.claims import NOTHING, Claims, Conflict
from kpng.dataplane.nft.packed import Planned, packer
from kpng.dataplane.nft.picks import sticky
from kpng.dataplane.nft.render import render_service
from kpng.dataplane.nft.skeleton import Config
from kpng.dataplane.nft.state import (
    Ids,
    Programmed,
    full_sync,
    static_objects,
    target_keys,
    transaction,
)
from kpng.dataplane.nft.transaction import Ruleset, Transaction
from kpng.diff import Op, View, service_keys
from kpng.model import Service, ViewEndpoint
from kpng.runtime.gcpause import no_gc

KEPT_PICKS = "\0picks"  # not a service key: the pick shapes kept since the last full sync


@lru_cache(maxsize=4)
def static_planned(config: Config) -> tuple[Planned, ...]:
    """The skeleton's sets, chains and elements, packed: the same for every full sync of a
    configuration (building them took 5-15 ms of each)."""
    return packer(config).pack_all(static_objects(config))


def serves(config: Config, services: Iterable[Service | None]) -> bool:
    """Whether a family's table would do anything: it has node-port addresses, or a service
    has an address (cluster, external, load-balancer) of the family. Without either, no
    packet can match it (node ports need ``nodeport_addrs``), so it need not exist: an IPv4
    cluster's node does not load an ``ip6`` skeleton."""
    if config.nodeport_cidrs:
        return True
    v6 = config.family == 6  # an IPv6 address has a colon, an IPv4 one never
    return any(
        (":" in ip) == v6
        for svc in services
        if svc is not None
        for ip in (*svc.cluster_ips, *svc.external_ips, *svc.load_balancer_ips)
    )


def _counted(counts: Counter[Planned], found: Iterable[Planned]) -> list[Planned]:
    """Count ``found`` into ``counts``; returns the objects counted for the first time, in
    the order they first came. A dict keeps its keys in the order they were first set, and
    a count that goes up keeps its place: the new ones are the last keys."""
    before = len(counts)
    counts.update(found)  # in C
    new = list(islice(reversed(counts), len(counts) - before))
    new.reverse()
    return new


STEP = 500  # services per step of a full sync into a new table (see Planner.plan_full_steps)


@dataclass(slots=True)
class Planner:
    config: Config
    ids: Ids = field(default_factory=Ids)
    programmed: Programmed | None = None
    claims: Claims = field(default_factory=Claims)

    def __post_init__(self) -> None:
        self.claims.family = self.config.family

    def conflicts(self) -> list[Conflict]:
        """The IP:ports several services claim, as last planned (:mod:`kpng.dataplane.claims`)."""
        return self.claims.conflicts()

    def plan_full(self, view: View[ViewEndpoint], live: Ruleset | None) -> Transaction:
        """Everything the view needs, as a diff against what the live table holds."""
        with no_gc():
            return self._plan_full(view, live)

    def _plan_full(self, view: View[ViewEndpoint], live: Ruleset | None) -> Transaction:
        if live is not None and self.programmed is None:
            self.ids = Ids.adopt(live)
        self.programmed = None  # freed before the new one is built (a resync's peak memory)
        pk = packer(self.config)
        by_service = {"": static_planned(self.config)}
        keep: set[str] = set()
        self.claims.set_all(view.services)
        by_service.update(self._render(view, list(view.services.items()), keep))
        self.ids.release([k for k in self.ids.by_key if k not in keep])
        programmed = Programmed(self.config)
        programmed.set_all(by_service)
        self.programmed = programmed
        return full_sync(self.config.nft_table, programmed.desired(), live, pk)

    def plan_full_steps(
        self, view: View[ViewEndpoint], live: Ruleset | None, step: int = 0
    ) -> Iterator[Transaction]:
        """A full sync as transactions to apply in order, so that one can be applied while
        the next is planned. Against a live table, one: :meth:`plan_full`. Into a new table
        (``live`` None), ``step`` (default :data:`STEP`) services at a time: the first
        transaction makes the table (its skeleton, the first services), each later one adds
        only elements and objects no earlier one added. The table is new, so nothing
        depended on these being one transaction (nor was it: ``nft`` writes the skeleton
        before the element batch); if one fails, the next full sync reads back what the
        earlier ones wrote.

        The steps may be planned in another thread than the one changing the view: the
        services, and each service's endpoints, are taken at once (copies made in C, under
        the GIL), so each service's plan is of one state of it."""
        if live is not None:
            yield self.plan_full(view, live)
            return
        with no_gc():  # over every step: a collector resumed between them ran ~100 times
            yield from self._new_table_steps(view, step or STEP)

    def _new_table_steps(self, view: View[ViewEndpoint], step: int) -> Iterator[Transaction]:
        self.programmed = None  # freed before the new one is built
        items = list(view.services.items())  # the steps' order, fixed
        self.claims.set_all(dict(items))
        keep: set[str] = set()
        counts: Counter[Planned] = Counter()
        by_service: dict[str, tuple[Planned, ...]] = {"": static_planned(self.config)}
        pk = packer(self.config)
        for start in range(0, max(len(items), 1), step):
            part = self._render(view, items[start : start + step], keep, copy=True)
            if start == 0:
                part[""] = by_service[""]
            by_service.update(part)
            new = _counted(counts, chain.from_iterable(part.values()))
            if start == 0:
                yield full_sync(self.config.nft_table, set(new), None, pk)
            else:
                yield transaction(self.config.nft_table, new, (), pk)
        self.ids.release([k for k in self.ids.by_key if k not in keep])
        programmed = Programmed(self.config)
        programmed.by_service = {k: objs for k, objs in by_service.items() if objs}
        programmed.counts = counts
        self.programmed = programmed

    def _render(
        self,
        view: View[ViewEndpoint],
        items: list[tuple[str, Service]],
        keep: set[str],
        copy: bool = False,
    ) -> dict[str, tuple[Planned, ...]]:
        """The objects of some services (the ids they use are added to ``keep``); with
        ``copy``, each from a copy of its endpoints (see :meth:`plan_full_steps`)."""
        lost = self.claims.lost
        out: dict[str, tuple[Planned, ...]] = {}
        self.ids.seen = keep
        try:
            for key, svc in items:
                eps = view.endpoints_of(key)
                out[key] = render_service(
                    svc, dict(eps) if copy else eps, self.config, self.ids, lost.get(key, NOTHING)
                )
        finally:
            self.ids.seen = None
        return out

    def plan_ops(self, view: View[ViewEndpoint], ops: Iterable[Op[ViewEndpoint]]) -> Transaction:
        """Only what the touched services changed. Needs a :meth:`plan_full` first."""
        if self.programmed is None:
            raise RuntimeError("incremental plan before the first full sync")
        pk = packer(self.config)
        added: list[Planned] = []
        removed: list[Planned] = []
        keys = service_keys(ops)
        # a service whose claims changed may take an IP:port from, or give it to, another
        keys = set(keys).union(*[self.claims.update(k, view.services.get(k)) for k in keys])
        for key in sorted(keys):
            svc = view.services.get(key)
            objs: tuple[Planned, ...] = ()
            if svc is not None:
                objs = render_service(
                    svc, view.endpoints_of(key), self.config, self.ids, self.claims.lost_by(key)
                )
            old_targets = target_keys(self.programmed.by_service.get(key, ()), pk)
            a, r = self.programmed.set_service(key, objs)
            added += a
            removed += r
            gone = set(old_targets) - set(target_keys(objs, pk))
            self.ids.release(gone)
        keep = sticky(self.config, added, removed)
        if keep:  # pick chains no target uses stay until the next full sync
            kept = self.programmed.by_service.get(KEPT_PICKS, ())
            self.programmed.set_service(KEPT_PICKS, (*kept, *keep))
            kept_now = set(keep)
            removed = [o for o in removed if o not in kept_now]
        return transaction(self.config.nft_table, added, removed, pk)
