"""From node views to transactions, for one family: the pure half of the nftables backend."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

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
        self.ids.seen = keep
        self.claims.set_all(view.services)
        lost = self.claims.lost
        try:
            for key, svc in view.services.items():
                by_service[key] = render_service(
                    svc, view.endpoints_of(key), self.config, self.ids, lost.get(key, NOTHING)
                )
        finally:
            self.ids.seen = None
        self.ids.release([k for k in self.ids.by_key if k not in keep])
        programmed = Programmed(self.config)
        programmed.set_all(by_service)
        self.programmed = programmed
        return full_sync(self.config.nft_table, programmed.desired(), live, pk)

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
