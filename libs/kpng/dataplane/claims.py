"""Which service holds an IP:port that several claim: the arbitration, pure.

The API server allocates cluster IPs and node ports uniquely, but nothing stops two
Services from listing the same external IP or load-balancer ingress IP with the same
protocol and port (kubernetes/kubernetes#69599). A dataplane holds one entry per
(address, protocol, port), so one service must get it, and every node must pick the same:

1. a cluster IP beats an external or load-balancer IP (an ``externalIPs`` entry naming
   another service's cluster IP cannot take its traffic);
2. then the service whose (namespace, name) sorts first wins (then the port name, for one
   service whose ports collide).

Node views carry no creation timestamps, so "oldest wins" is not available; the rule
depends on nothing but the services themselves. A loser loses only the contested
IP:port: its other addresses and ports keep working, and it gets the IP:port back as soon
as the winner releases it. Node ports are claims too (address ``""``), for views that did
not come from an API server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kpng.model import Service, address_family

CLUSTER_IP = 0
EXTERNAL = 1  # an external IP, a load-balancer IP, or a node port

Claim = tuple[str, str, int]  # (address, "" for a node port; protocol; port)
Claimant = tuple[int, str, str, str]  # (kind, namespace, name, port name): sorts by rank
Lost = tuple[int, str, Claim]  # (kind, port name, claim): what render leaves out
NOTHING: frozenset[Lost] = frozenset()


def service_claims(svc: Service, family: int) -> frozenset[tuple[Claim, Claimant]]:
    """Every IP:port (of ``family``) and node port the service would program."""
    out: set[tuple[Claim, Claimant]] = set()
    ns, name = svc.namespace, svc.name
    ext = (*svc.external_ips, *svc.load_balancer_ips) if svc.externally_accessible else ()
    for sp in svc.ports:
        proto, port = str(sp.protocol), sp.port
        for ip in svc.cluster_ips:
            if address_family(ip) == family:
                out.add(((ip, proto, port), (CLUSTER_IP, ns, name, sp.name)))
        for ip in ext:
            if address_family(ip) == family:
                out.add(((ip, proto, port), (EXTERNAL, ns, name, sp.name)))
        if sp.node_port and svc.externally_accessible:
            out.add((("", proto, sp.node_port), (EXTERNAL, ns, name, sp.name)))
    return frozenset(out)


def claim_text(claim: Claim) -> str:
    ip, proto, port = claim
    if not ip:
        return f"node port {port}/{proto}"
    return f"[{ip}]:{port}/{proto}" if ":" in ip else f"{ip}:{port}/{proto}"


def claimant_text(c: Claimant) -> str:
    kind = "cluster IP" if c[0] == CLUSTER_IP else "external/load-balancer IP"
    port = f" port {c[3]!r}" if c[3] else ""
    return f"{c[1]}/{c[2]}{port} ({kind})"


@dataclass(frozen=True, slots=True)
class Conflict:
    """An IP:port claimed by several services: who keeps it, who lost it."""

    claim: Claim
    winner: Claimant
    losers: tuple[Claimant, ...]

    def __str__(self) -> str:
        return (
            f"{self.parties()}: {self.winner[1]}/{self.winner[2]} keeps it (cluster IPs "
            f"first, then the first namespace/name)"
        )

    def parties(self) -> str:
        losers = ", ".join(map(claimant_text, self.losers))
        return f"{claim_text(self.claim)} claimed by {claimant_text(self.winner)} and {losers}"


@dataclass(slots=True)
class Claims:
    """The claims of every service of a view, for one address family, kept incrementally."""

    family: int = 4
    holders: dict[Claim, list[Claimant]] = field(default_factory=dict)
    by_service: dict[str, frozenset[tuple[Claim, Claimant]]] = field(default_factory=dict)
    lost: dict[str, frozenset[Lost]] = field(default_factory=dict)  # only services that lose
    contested: set[Claim] = field(default_factory=set)  # claims with several claimants

    def set_all(self, services: Mapping[str, Service]) -> None:
        """Every service's claims at once (a full sync)."""
        self.holders, self.by_service, self.lost = {}, {}, {}
        holders, by_service, family = self.holders, self.by_service, self.family
        for key, svc in services.items():
            by_service[key] = mine = service_claims(svc, family)
            for claim, who in mine:
                holders.setdefault(claim, []).append(who)  # one look-up of the claim
        self.contested = {c for c, h in holders.items() if len(h) > 1}
        if self.contested:
            self._relose(self._holding(self.contested))

    def update(self, key: str, svc: Service | None) -> set[str]:
        """Record a service's new claims (``None``: deleted). Returns the other services
        whose lost IP:ports changed: they must be rendered again."""
        old = self.by_service.pop(key, frozenset())
        new = service_claims(svc, self.family) if svc is not None else frozenset()
        if new:
            self.by_service[key] = new
        if old == new:
            return set()
        for claim, who in old - new:
            h = self.holders[claim]
            h.remove(who)
            if not h:
                del self.holders[claim]
        for claim, who in new - old:
            self.holders.setdefault(claim, []).append(who)
        changed = {c for c, _ in old ^ new}
        for claim in changed:
            if len(self.holders.get(claim, ())) > 1:
                self.contested.add(claim)
            else:
                self.contested.discard(claim)
        touched = self._holding(changed)
        before = {k: self.lost.get(k, NOTHING) for k in touched}
        self._relose(touched | {key})
        return {k for k in touched if k != key and self.lost.get(k, NOTHING) != before[k]}

    def lost_by(self, key: str) -> frozenset[Lost]:
        return self.lost.get(key, NOTHING)

    def conflicts(self) -> list[Conflict]:
        out = []
        for claim in sorted(self.contested):
            ranked = sorted(self.holders[claim])
            out.append(Conflict(claim, ranked[0], tuple(ranked[1:])))
        return out

    def _holding(self, claims: Iterable[Claim]) -> set[str]:
        return {f"{w[1]}/{w[2]}" for c in claims for w in self.holders.get(c, ())}

    def _relose(self, keys: Iterable[str]) -> None:
        holders = self.holders
        for key in keys:
            lost = frozenset(
                (who[0], who[3], claim)
                for claim, who in self.by_service.get(key, ())
                if len(holders[claim]) > 1 and min(holders[claim]) != who
            )
            if lost:
                self.lost[key] = lost
            else:
                self.lost.pop(key, None)
