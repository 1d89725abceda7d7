"""The nftables backend: programs the node view into one kpng table per family.

A snapshot, a retry or a change of this node's addresses is a full sync: the live table
is read once and only what differs is written (a restarted agent that finds its table as
it wants it writes nothing); into a new table it is written in steps, each applied while the
next is planned (:mod:`kpng_agent.backends.pipeline`). Every other delta touches only the
services it names.

A family whose table could match no packet (no node-port address and no service address
of that family, :func:`~kpng.dataplane.nft.planner.serves`: the ``ip6`` table of an IPv4
cluster) has no table: a full sync removes one left there, and the first change that gives
a service an address of the family makes it with a full sync of that family.

A full sync of both families of a big view (``Settings.fork_above`` services or more, on a
node with a second CPU) programs the second family in a forked child, as kube-proxy's
proxiers run on two CPUs (:mod:`kpng_agent.backends.parallel`): the child plans and writes
the family's table over a netlink socket of its own, and sends back the planner's state,
which the parent adopts for the changes that follow.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from kpng.bus.consumer import Applied
from kpng.dataplane import detectlocal
from kpng.dataplane.claims import Conflict
from kpng.dataplane.nft.kernel.execnft import NftCommand
from kpng.dataplane.nft.kernel.nlnft import NetlinkNftables
from kpng.dataplane.nft.planner import Planner, serves
from kpng.dataplane.nft.skeleton import Config
from kpng.dataplane.nft.transaction import Nftables, Transaction
from kpng.diff import View, families_touched, service_keys
from kpng.model import ViewEndpoint, of_family
from kpng_agent.backends.parallel import ParallelFamilies
from kpng_agent.backends.pipeline import apply_steps
from kpng_agent.backends.trim import trim

log = logging.getLogger(__name__)
PRIMARY = "primary"


@dataclass(frozen=True, slots=True)
class Settings:
    node: str
    table: str = "kpng"
    cluster_cidrs: tuple[str, ...] = ()
    nodeport_addresses: tuple[str, ...] = (PRIMARY,)
    masquerade_all: bool = False
    # --detect-local-mode: the iifname pattern of pod traffic ("": by source address)
    pod_interface: str = ""
    # --detect-local-mode: NodeCIDR tells pods by the Node's spec.podCIDRs, any other mode
    # by --cluster-cidr (kpng.dataplane.detectlocal.pod_cidrs)
    detect_local: str = detectlocal.CLUSTER_CIDR
    masquerade_bit: int = 14  # the packet-mark bit that asks for masquerade
    families: tuple[int, ...] = (4, 6)
    netlink: bool = True  # elements over netlink (nft only for the skeleton)
    # services: a full sync of both families of a view this big writes the second family
    # from a forked child, on another CPU (0: never)
    fork_above: int = 2000


def nodeport_cidrs(
    s: Settings, view: View[ViewEndpoint], family: int, local: Callable[[], Sequence[str]]
) -> tuple[str, ...]:
    """``--nodeport-addresses`` for one family: the CIDRs given, or with ``primary`` the
    node's addresses from its Node object (else the addresses found on the node)."""
    out: list[str] = []
    for item in s.nodeport_addresses:
        if item != PRIMARY:
            out += of_family((item,), family)
            continue
        node = view.nodes.get(s.node)
        found = list(node.addresses) if node and node.addresses else list(local())
        out += [ip for ip in found if ipaddress.ip_address(ip).version == family][:1]
    return tuple(out)


def config_for(
    s: Settings, view: View[ViewEndpoint], family: int, local: Callable[[], Sequence[str]]
) -> Config:
    return Config(
        family=family,
        table=s.table,
        node=s.node,
        pod_cidrs=detectlocal.pod_cidrs(
            s.detect_local, family, s.cluster_cidrs, view.nodes.get(s.node)
        ),
        nodeport_cidrs=nodeport_cidrs(s, view, family, local),
        masquerade_all=s.masquerade_all,
        masquerade_bit=s.masquerade_bit,
        pod_interface=s.pod_interface,
    )


def with_netlink(nft: Nftables) -> Nftables:
    """An ``nft`` command gets the netlink element path in the same namespace; any other
    implementation (a fake) is used as it is."""
    return NetlinkNftables(nft) if isinstance(nft, NftCommand) else nft


class NftablesBackend:
    name = "nftables"

    def __init__(
        self, settings: Settings, nft: Nftables, local_addresses: Callable[[], Sequence[str]]
    ) -> None:
        self.settings = settings
        self.nft = with_netlink(nft) if settings.netlink else nft
        # the netlink adapter, kept when self.nft is wrapped (a bench's timing)
        netlink = self.nft if isinstance(self.nft, NetlinkNftables) else None
        self.parallel = ParallelFamilies(netlink, settings.fork_above)
        self.local_addresses = local_addresses
        self.planners: dict[int, Planner] = {}
        self.idle: set[int] = set()  # families without a table (see the module's docstring)
        self.last_ops = 0  # operations written by the last program()
        # IP:ports that several services claim, as programmed (see kpng.dataplane.claims)
        self.conflicts: tuple[Conflict, ...] = ()
        self.without_pod_cidrs = False  # NodeCIDR mode: the node's pod CIDRs not known
        # kpng.dataplane.backend.PerFamily: the last program()'s families, for the metrics
        self.family_seconds: dict[int, float] = {}
        self.failed_families: tuple[int, ...] = ()

    async def program(self, event: Applied[ViewEndpoint], full: bool) -> None:
        started = time.perf_counter()
        self.family_seconds, self.failed_families = {}, ()
        if self.settings.detect_local == detectlocal.NODE_CIDR:
            self._note_pod_cidrs(event.view)
        # concurrently: one family's nft (the skeleton of a new table) runs while the other
        # is planned; the netlink socket serialises its own users
        forked = self._to_fork(event, full)
        # a forked family first: its child starts before the parent plans its own first step
        families = sorted(self.settings.families, key=lambda f: f != forked)
        if not full:  # only the families the changes may touch sync, as kube-proxy's proxiers
            touched = families_touched(event.ops)
            families = [f for f in families if f in touched]

        async def timed(family: int) -> int:
            try:
                return await self._program_family(event, full, family, family == forked)
            finally:
                self.family_seconds[family] = time.perf_counter() - started

        try:
            done = await asyncio.gather(*map(timed, families), return_exceptions=True)
        finally:  # a child's plan is taken once the parent's own work is done
            self.parallel.adopt(self._report_conflicts)
        self.failed_families = tuple(
            f for f, outcome in zip(families, done, strict=True) if isinstance(outcome, Exception)
        )
        for outcome in done:
            if isinstance(outcome, BaseException):
                raise outcome
        self.last_ops = sum(n for n in done if isinstance(n, int))
        if full:
            trim()  # the plans and the table read back are freed: give the pages back
        self._report_conflicts()
        log.info(
            "programmed %s seq %d: %d ops in %.1f ms",
            "full" if full else event.kind,
            event.seq,
            self.last_ops,
            (time.perf_counter() - started) * 1000,
        )

    def _note_pod_cidrs(self, view: View[ViewEndpoint]) -> None:
        """NodeCIDR mode: say when the node's pod CIDRs are missing and when they come (the
        tables are written with them by then: a new pod CIDR is a new configuration)."""
        node = view.nodes.get(self.settings.node)
        cidrs = node.pod_cidrs if node is not None else ()
        if not cidrs and not self.without_pod_cidrs:
            log.warning(
                "--detect-local-mode NodeCIDR: node %s %s no spec.podCIDRs: no traffic is "
                "told a pod's (nothing is masqueraded for coming from outside the pods, "
                "nothing short-circuited) until it has",
                self.settings.node,
                "is not known yet, so" if node is None else "has",
            )
        elif cidrs and self.without_pod_cidrs:
            log.info("--detect-local-mode NodeCIDR: pods told by %s", ", ".join(cidrs))
        self.without_pod_cidrs = not cidrs

    def _report_conflicts(self) -> None:
        """Log each conflict when it appears and when it clears (node ports: once for both
        families)."""
        now = tuple(sorted({c for p in self.planners.values() for c in p.conflicts()}, key=str))
        before = set(self.conflicts)
        for c in now:
            if c not in before:
                log.warning("IP:port conflict: %s; the others lose only this IP:port", c)
        for c in sorted(before - set(now), key=str):
            log.info("IP:port conflict over: no longer %s", c.parties())
        self.conflicts = now

    def _to_fork(self, event: Applied[ViewEndpoint], full: bool) -> int | None:
        """The family this sync writes from a child (:mod:`kpng_agent.backends.parallel`)."""
        if not full:
            return None
        view, s = event.view, self.settings
        busy = (
            f
            for f in s.families
            if serves(config_for(s, view, f, self.local_addresses), view.services.values())
        )
        return self.parallel.choose(len(view.services), busy)

    async def _program_family(
        self, event: Applied[ViewEndpoint], full: bool, family: int, fork: bool = False
    ) -> int:
        await self.parallel.wait(family)  # the plan of the last full sync, from its child
        config = config_for(self.settings, event.view, family, self.local_addresses)
        if family in self.idle and not full:
            touched = service_keys(event.ops)
            if not serves(config, (event.view.services.get(k) for k in touched)):
                return 0
            full = True  # a service now has an address of this family: make its table
        if full and not serves(config, event.view.services.values()):
            return await self._idle(config)
        self.idle.discard(family)
        planner = self.planners.get(family)
        if planner is None or planner.config != config:
            full = True
            planner = Planner(config) if planner is None else replace(planner, config=config)
            self.planners[family] = planner
        try:
            if fork and (ops := await self.parallel.write(planner, event.view)) is not None:
                return ops
            if full or planner.programmed is None:
                live = await self.nft.read(config.nft_table)
                return await apply_steps(self.nft, planner.plan_full_steps(event.view, live))
            tx = planner.plan_ops(event.view, event.ops)
            await self.nft.run(tx)
        except Exception:
            planner.programmed = None  # a plan may be half recorded: the next sync reads back
            raise
        return len(tx)

    async def _idle(self, config: Config) -> int:
        """No table for this family: remove the one there is, if any."""
        self.idle.add(config.family)
        self.planners.pop(config.family, None)
        if await self.nft.read(config.nft_table) is None:
            return 0
        tx = Transaction(config.nft_table)
        tx.delete(config.nft_table)
        await self.nft.run(tx)
        return len(tx)

    async def close(self) -> None:
        await self.parallel.close()
        if isinstance(self.nft, NetlinkNftables):
            self.nft.close()
