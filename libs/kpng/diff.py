"""Views as tables, the operations between two of them, and applying operations.

A view is what one consumer knows: services, their endpoints (by IP) and nodes. The node
view of the bus holds :class:`~kpng.model.ViewEndpoint`, the global view holds
:class:`~kpng.model.Endpoint`. ``apply(diff(a, b), a) == b`` for any two views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kpng.digest import PartialDigest, endpoint_hash, node_hash, service_hash, table_hash
from kpng.model import Endpoint, Node, Service, ViewEndpoint, address_family

E = TypeVar("E", Endpoint, ViewEndpoint)


@dataclass(frozen=True, slots=True)
class SetService:
    service: Service


@dataclass(frozen=True, slots=True)
class DeleteService:
    key: str


@dataclass(frozen=True, slots=True)
class SetEndpoint(Generic[E]):
    service: str
    endpoint: E


@dataclass(frozen=True, slots=True)
class DeleteEndpoint:
    service: str
    ip: str


@dataclass(frozen=True, slots=True)
class SetNode:
    node: Node


@dataclass(frozen=True, slots=True)
class DeleteNode:
    name: str


Op = SetService | DeleteService | SetEndpoint[E] | DeleteEndpoint | SetNode | DeleteNode


def service_keys(ops: Iterable[Op[Any]]) -> set[str]:
    """The keys of the services that ``ops`` touch (set, deleted, or with endpoint changes)."""
    keys: set[str] = set()
    for op in ops:
        match op:
            case SetService(service):
                keys.add(service.key)
            case DeleteService(key) | SetEndpoint(key, _) | DeleteEndpoint(key, _):
                keys.add(key)
    return keys


BOTH_FAMILIES = frozenset({4, 6})


def families_touched(ops: Iterable[Op[Any]]) -> frozenset[int]:
    """The IP families (4, 6) whose rules ``ops`` may change. An endpoint's change is its own
    address family's alone, as kube-proxy gives an EndpointSlice only to its family's proxier
    (a change to another endpoint's marks comes as that endpoint's own operation); any other
    operation (a service, a node) may change both."""
    families: set[int] = set()
    for op in ops:
        if type(op) is SetEndpoint:
            families.add(address_family(op.endpoint.ip))
        elif type(op) is DeleteEndpoint:
            families.add(address_family(op.ip))
        else:
            return BOTH_FAMILIES
    return frozenset(families)


class InconsistentOp(ValueError):
    """An operation that does not fit the view it is applied to (the stream lost something)."""


@dataclass(slots=True)
class View(Generic[E]):
    """Services by key, their endpoints by IP, nodes by name. Treat as immutable."""

    services: dict[str, Service] = field(default_factory=dict)
    endpoints: dict[str, dict[str, E]] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    # keys whose endpoint table other views share: copied before this view changes it
    shared: set[str] = field(default_factory=set, compare=False, repr=False)
    # the endpoint tables of a view this one was copied from (never changed): a table that
    # is still the same object is shared too (no per-view set of 10^4 keys to build)
    base: Mapping[str, Mapping[str, E]] | None = field(default=None, compare=False, repr=False)
    # the view's digest (kpng.digest) once asked for, then kept current by apply_in_place
    known_digest: int | None = field(default=None, compare=False, repr=False)
    # the (never changed) view this one was copied from: its digest is computed once, and
    # this view's from what differs (a zone's nodes of one process: one hashing, not N)
    origin: View[E] | None = field(default=None, compare=False, repr=False)
    # the service keys that may differ from origin's (None: any), while the digest is unknown
    changed: set[str] | None = field(default=None, compare=False, repr=False)
    # the digest being computed in steps (digest_steps), kept right by apply_in_place
    partial: PartialDigest | None = field(default=None, compare=False, repr=False)

    def digest(self) -> int:
        """The digest of the view (:mod:`kpng.digest`): computed once, then kept current."""
        for _ in self.digest_steps(budget=1 << 62):
            pass
        assert self.known_digest is not None
        return self.known_digest

    def digest_steps(self, budget: int = 2000) -> Iterator[None]:
        """Computes the digest, yielding after each ``budget`` items (services, endpoints)
        hashed; the view may change between steps. The progress is the view's own (and its
        origin's): steps left unfinished are resumed by the next call, from any caller."""
        if self.origin is not None:
            yield from self.origin.digest_steps(budget)
            if self.known_digest is None:
                self.known_digest = self._digest_from(self.origin)
                self.changed = None
            return
        while self.known_digest is None:
            if self.partial is None:
                self.partial = PartialDigest(self.services.keys() | self.endpoints.keys())
            if self.partial.step(self.services, self.endpoints, self.shares, budget):
                self.known_digest = self.partial.finish(
                    self.services, self.endpoints, self.nodes, self.shares
                )
                self.partial = None
                return
            yield

    def _digest_from(self, origin: View[E]) -> int:
        """The digest as ``origin``'s, corrected by the items that are not its own objects:
        only those under the keys changed since the copy (a node's own part), if known."""
        assert origin.known_digest is not None
        d = origin.known_digest ^ _correction(self.nodes, origin.nodes, lambda k, n: node_hash(n))
        keys = self.changed
        if keys is None:
            keys = self.services.keys() | self.endpoints.keys()
            keys |= origin.services.keys() | origin.endpoints.keys()
        for key in keys:
            new, old = self.services.get(key), origin.services.get(key)
            if new is not old:
                d ^= (0 if new is None else service_hash(new)) ^ (
                    0 if old is None else service_hash(old)
                )
            table, was = self.endpoints.get(key), origin.endpoints.get(key)
            if table is not was:
                d ^= _correction(table or {}, was or {}, partial_endpoint_hash(key))
        return d

    def shares(self, key: str, table: Mapping[str, E]) -> bool:
        """Whether ``table`` (this view's table of ``key``) is another view's as well."""
        return key in self.shared or (self.base is not None and self.base.get(key) is table)

    def endpoints_of(self, key: str) -> Mapping[str, E]:
        return self.endpoints.get(key, {})

    def counts(self) -> dict[str, int]:
        return {
            "services": len(self.services),
            "endpoints": sum(len(eps) for eps in self.endpoints.values()),
            "nodes": len(self.nodes),
        }


_T = TypeVar("_T")


def _correction(
    mine: Mapping[str, _T], theirs: Mapping[str, _T], hash_of: Callable[[str, _T], int]
) -> int:
    """The XOR of the hashes of items of ``mine`` and ``theirs`` that are not the same
    object under the same key (added, removed or replaced)."""
    d = 0
    for key, item in mine.items():
        old = theirs.get(key)
        if old is not item:
            d ^= hash_of(key, item) ^ (0 if old is None else hash_of(key, old))
    for key in theirs.keys() - mine.keys():
        d ^= hash_of(key, theirs[key])
    return d


def partial_endpoint_hash(key: str) -> Callable[[str, Any], int]:
    return lambda ip, endpoint: endpoint_hash(key, endpoint)


def diff_service(
    key: str,
    old: Service | None,
    old_endpoints: Mapping[str, E],
    new: Service | None,
    new_endpoints: Mapping[str, E],
) -> list[Op[E]]:
    """The operations that turn one service's old state into its new state."""
    if new is None:
        return [DeleteService(key)] if old is not None else []
    ops: list[Op[E]] = []
    if old != new:
        ops.append(SetService(new))
    if old is None:
        old_endpoints = {}
    for ip in old_endpoints:
        if ip not in new_endpoints:
            ops.append(DeleteEndpoint(key, ip))
    for ip, endpoint in new_endpoints.items():
        if old_endpoints.get(ip) != endpoint:
            ops.append(SetEndpoint(key, endpoint))
    return ops


def diff_nodes(old: Mapping[str, Node], new: Mapping[str, Node]) -> list[Op[E]]:
    ops: list[Op[E]] = [DeleteNode(name) for name in old if name not in new]
    ops.extend(SetNode(node) for name, node in new.items() if old.get(name) != node)
    return ops


def diff(a: View[E], b: View[E]) -> list[Op[E]]:
    """The operations that turn view ``a`` into view ``b``."""
    ops: list[Op[E]] = []
    for key in a.services.keys() | b.services.keys():
        ops.extend(
            diff_service(
                key,
                a.services.get(key),
                a.endpoints_of(key),
                b.services.get(key),
                b.endpoints_of(key),
            )
        )
    ops.extend(diff_nodes(a.nodes, b.nodes))
    return ops


def apply(ops: Iterable[Op[E]], view: View[E]) -> View[E]:
    """A new view: ``view`` with ``ops`` applied in order. ``view`` is left as it was.

    Raises :class:`InconsistentOp` for an endpoint of a service the view does not have.
    """
    services = dict(view.services)
    endpoints = dict(view.endpoints)
    nodes = dict(view.nodes)
    copied: set[str] = set()

    def own(key: str) -> dict[str, E]:
        if key not in services:
            raise InconsistentOp(f"endpoint for unknown service {key}")
        if key not in copied:
            endpoints[key] = dict(endpoints.get(key, {}))
            copied.add(key)
        return endpoints[key]

    for op in ops:
        match op:
            case SetService(service):
                services[service.key] = service
            case DeleteService(key):
                services.pop(key, None)
                endpoints.pop(key, None)
                copied.discard(key)
            case SetEndpoint(key, endpoint):
                own(key)[endpoint.ip] = endpoint
            case DeleteEndpoint(key, ip):
                own(key).pop(ip, None)
            case SetNode(node):
                nodes[node.name] = node
            case DeleteNode(name):
                nodes.pop(name, None)
    for key in copied:
        if key in endpoints and not endpoints[key]:
            del endpoints[key]
    return View(services, endpoints, nodes, {k for k in endpoints if k not in copied})


def _check_fits(ops: Sequence[Op[E]], view: View[E]) -> None:
    """Raises :class:`InconsistentOp` if an endpoint operation's service would be missing."""
    present: dict[str, bool] = {}
    for op in ops:
        if isinstance(op, SetService):
            present[op.service.key] = True
        elif isinstance(op, DeleteService):
            present[op.key] = False
        elif isinstance(op, SetEndpoint | DeleteEndpoint):
            known = present.get(op.service)
            if not (known or (known is None and op.service in view.services)):
                raise InconsistentOp(f"endpoint for unknown service {op.service}")


def apply_in_place(ops: Sequence[Op[E]], view: View[E]) -> View[E]:
    """Like :func:`apply`, but changes ``view`` itself (and returns it): the cost is that of
    the operations, not of the view. All or nothing: an operation that does not fit raises
    :class:`InconsistentOp` before anything is changed. A digest the view knows
    (:meth:`View.digest`) is kept current by the items replaced, added and removed."""
    _check_fits(ops, view)
    touched: set[str] = set()
    services, endpoints, nodes, shared = view.services, view.endpoints, view.nodes, view.shared
    d = view.known_digest
    # a digest being computed (View.digest_steps): the keys it has done are kept right too
    partial = view.partial if d is None else None
    changed = view.changed if d is None else None  # the keys to correct from the origin's
    done = partial.done if partial is not None else ()
    for op in ops:
        if isinstance(op, SetEndpoint | DeleteEndpoint):
            key = op.service
            if changed is not None:
                changed.add(key)
            track = d is not None or key in done
            table = endpoints.get(key)
            if table is None:
                table = endpoints[key] = {}
            elif view.shares(key, table):
                table = endpoints[key] = dict(table)
                shared.discard(key)
            x = 0
            if isinstance(op, SetEndpoint):
                old_ep = table.get(op.endpoint.ip)
                table[op.endpoint.ip] = op.endpoint
                if track:
                    x = endpoint_hash(key, op.endpoint)
                    x ^= 0 if old_ep is None else endpoint_hash(key, old_ep)
            else:
                old_ep = table.pop(op.ip, None)
                touched.add(key)
                if track and old_ep is not None:
                    x = endpoint_hash(key, old_ep)
        elif isinstance(op, SetService | DeleteService):
            key = op.service.key if isinstance(op, SetService) else op.key
            if changed is not None:
                changed.add(key)
            track = d is not None or key in done
            x = 0
            if isinstance(op, SetService):
                old_svc = services.get(key)
                services[key] = op.service
                if track:
                    x = service_hash(op.service) ^ (0 if old_svc is None else service_hash(old_svc))
            else:
                old_svc = services.pop(key, None)
                old_table = endpoints.pop(key, None)
                shared.discard(key)
                if track:
                    x = 0 if old_svc is None else service_hash(old_svc)
                    x ^= 0 if old_table is None else table_hash(key, old_table.values())
        else:
            if isinstance(op, SetNode):
                old_node = nodes.get(op.node.name)
                nodes[op.node.name] = op.node
            else:
                old_node = nodes.pop(op.name, None)
            if d is not None:
                d ^= 0 if old_node is None else node_hash(old_node)
                d ^= node_hash(op.node) if isinstance(op, SetNode) else 0
            continue
        if not track:
            continue
        if d is not None:
            d ^= x
        elif partial is not None:
            partial.acc ^= x
    view.known_digest = d
    for key in touched:
        if key in endpoints and not endpoints[key]:
            del endpoints[key]
    return view
