"""The Kubernetes objects a service proxy needs, as plain immutable values.

Nothing here knows about YAML, the Kubernetes API or the bus: :mod:`kpng.parse` builds
these values from Kubernetes objects and :mod:`kpng.bus.wire` puts them on the wire.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import ClassVar

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_SERVICE_PROXY_NAME = "service.kubernetes.io/service-proxy-name"
LABEL_HEADLESS = "service.kubernetes.io/headless"
LABEL_ZONE = "topology.kubernetes.io/zone"
LABEL_REGION = "topology.kubernetes.io/region"
# the cluster autoscaler's taint on a node it is about to delete (kube-proxy's health server
# reads it as the node going away)
TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"
ANNOTATION_TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
ANNOTATION_TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
DEFAULT_AFFINITY_TIMEOUT = 10800
NAME_MAX = 253  # a Kubernetes name (DNS-1123 subdomain) is at most this long

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(rf"{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*")


def name_problem(name: object) -> str:
    """What makes ``name`` no Kubernetes object name (DNS-1123 subdomain), "" if nothing.

    The one rule for node names at every entry (sources, bus subjects, observer paths): a
    valid name is a valid NATS subject token once its dots are replaced (no ``*``, ``>``,
    space or ``_``), and short enough for any subject the bus builds from it."""
    if not isinstance(name, str):
        return f"expected a string, got {type(name).__name__}"
    if not name:
        return "empty"
    if len(name) > NAME_MAX:
        return f"{len(name)} characters (at most {NAME_MAX})"
    if _DNS1123_SUBDOMAIN.fullmatch(name) is None:
        return "not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')"
    return ""


def shown_name(name: str, limit: int = 64) -> str:
    """``name`` cut for a log line (a hostile name may be megabytes long)."""
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}... ({len(name)} chars)"


class TransportProtocol(StrEnum):
    """A service port's L4 protocol (Kubernetes calls it ``Protocol``)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class ServiceType(StrEnum):
    CLUSTER_IP = "ClusterIP"
    NODE_PORT = "NodePort"
    LOAD_BALANCER = "LoadBalancer"


class TrafficPolicy(StrEnum):
    CLUSTER = "Cluster"
    LOCAL = "Local"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a service. ``target_port`` is a number or the name of an endpoint port."""

    name: str
    protocol: TransportProtocol
    port: int
    target_port: int | str
    node_port: int = 0


@dataclass(frozen=True, slots=True)
class Service:
    """A proxied service (never headless nor ExternalName: those are dropped at parse time)."""

    namespace: str
    name: str
    type: ServiceType
    cluster_ips: tuple[str, ...]
    ports: tuple[ServicePort, ...]
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    affinity_timeout: int = 0
    internal_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    external_traffic_policy: TrafficPolicy = TrafficPolicy.CLUSTER
    health_check_node_port: int = 0
    traffic_distribution: str = ""
    topology_mode: str = ""
    # metadata.labels, sorted; only the global view carries them (node views never need them)
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def without_labels(self) -> Service:
        """The service as node views carry it: a label change is no change to a node."""
        return replace(self, labels=()) if self.labels else self

    @property
    def externally_accessible(self) -> bool:
        """True when the service takes traffic from outside: NodePort, LB or external IPs."""
        return (
            self.type is not ServiceType.CLUSTER_IP
            or bool(self.external_ips)
            or bool(self.load_balancer_ips)
        )

    @property
    def short_circuits(self) -> bool:
        """True when pods' and the node's traffic to the service's external addresses goes
        to endpoints that neither of its traffic policies selects: both policies are Local
        (kube-proxy sends it to the cluster-wide endpoints, its "cluster policy chain"; with
        internalTrafficPolicy Cluster those are the internal ones)."""
        return (
            self.external_traffic_policy is TrafficPolicy.LOCAL
            and self.internal_traffic_policy is TrafficPolicy.LOCAL
            and self.externally_accessible
        )

    @property
    def topology_enabled(self) -> bool:
        """Whether topology hints may be used (trafficDistribution or topology-mode gating)."""
        if self.traffic_distribution in ("PreferClose", "PreferSameZone", "PreferSameNode"):
            return True
        return self.topology_mode.lower() == "auto"


@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    protocol: TransportProtocol
    port: int


@dataclass(frozen=True, slots=True)
class _EndpointAddress:
    """What every endpoint has: its address and ports, where it runs and its conditions."""

    ip: str
    ports: tuple[EndpointPort, ...]
    node: str = ""
    zone: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class Endpoint(_EndpointAddress):
    """One endpoint address of a service, merged from its EndpointSlices."""

    zone_hints: frozenset[str] = frozenset()
    node_hints: frozenset[str] = frozenset()

    @property
    def usable(self) -> bool:
        """Ready, or serving while terminating (the fallback set). Others are never used."""
        return self.ready or (self.serving and self.terminating)


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str
    address_type: str
    endpoints: tuple[Endpoint, ...]
    trigger_time: float | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.service}"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    addresses: tuple[str, ...] = ()
    zone: str = ""
    region: str = ""
    # spec.podCIDRs: the pod address ranges given to the node, at most one per family
    # (kube-proxy's --detect-local-mode NodeCIDR tells this node's pods by them)
    pod_cidrs: tuple[str, ...] = ()
    # going away: a deletionTimestamp, or the cluster autoscaler's ToBeDeletedByClusterAutoscaler
    # taint (kube-proxy's /healthz then fails, so load balancers drain the node)
    deleting: bool = False


Marks = tuple[bool, bool, bool]  # (internal, external, shortcut): see ViewEndpoint
INTERNAL_MARK, EXTERNAL_MARK, SHORTCUT_MARK = 0, 1, 2  # each traffic's index in Marks


@dataclass(frozen=True, slots=True)
class PortMarks:
    """A view endpoint's marks for one service port (name, protocol) where they differ from
    the endpoint's own (see :class:`ViewEndpoint`)."""

    name: str
    protocol: TransportProtocol
    internal: bool
    external: bool
    shortcut: bool = False


@dataclass(frozen=True, slots=True)
class ViewEndpoint(_EndpointAddress):
    """An endpoint as one node sees it: may it carry cluster-IP (internal) and external
    traffic, and (``shortcut``, only for a service whose traffic policies are both Local:
    :attr:`Service.short_circuits`) the traffic that pods and the node send to the
    service's external addresses, which goes to the cluster-wide endpoints.

    Endpoints are selected per service port, as kube-proxy does: ``internal``/``external``
    hold for every port of the service, except the ports named in ``port_marks``, which
    carry their own. Only a :class:`MarkedViewEndpoint` has port marks, and only when the
    endpoints of the service list different ports and some port's own selection differs
    (a rollout that drops a named port, Local policy or topology hints judged per port):
    here ``port_marks`` is a class attribute, so the common case costs no object and no
    byte more (no slot) than before port marks existed."""

    internal: bool = False
    external: bool = False
    shortcut: bool = False  # (a slot that costs no memory: the object's size class is the same)
    port_marks: ClassVar[tuple[PortMarks, ...]] = ()

    def marks(self, name: str, protocol: TransportProtocol) -> tuple[bool, bool]:
        """(internal, external) for the service port of this name and protocol (the same for
        every port here; a :class:`MarkedViewEndpoint` has its own for some)."""
        return self.internal, self.external

    def all_marks(self, name: str, protocol: TransportProtocol) -> Marks:
        """:meth:`marks` and the port's shortcut mark: (internal, external, shortcut)."""
        return self.internal, self.external, self.shortcut

    def with_port_marks(self, marks: tuple[PortMarks, ...]) -> ViewEndpoint:
        """This endpoint with these port marks: a :class:`MarkedViewEndpoint`, or a plain
        ViewEndpoint when there are none (so that equal endpoints compare equal)."""
        fields = (
            self.ip,
            self.ports,
            self.node,
            self.zone,
            self.ready,
            self.serving,
            self.terminating,
            self.internal,
            self.external,
            self.shortcut,
        )
        if marks:
            return MarkedViewEndpoint(*fields, marks)
        return self if type(self) is ViewEndpoint else ViewEndpoint(*fields)


@dataclass(frozen=True, slots=True)
class MarkedViewEndpoint(ViewEndpoint):
    """A view endpoint with port marks (never none: see :meth:`ViewEndpoint.with_port_marks`)."""

    port_marks: tuple[PortMarks, ...] = ()  # type: ignore[misc]  # (a field here, see above)
    # the marks by (name, protocol): one lookup per port, however many marks a message gave
    _by_port: dict[tuple[str, str], Marks] = field(
        default_factory=dict, init=False, compare=False, hash=False, repr=False
    )

    def __post_init__(self) -> None:
        by_port = {
            (m.name, m.protocol.value): (m.internal, m.external, m.shortcut)
            for m in self.port_marks
        }
        object.__setattr__(self, "_by_port", by_port)

    def marks(self, name: str, protocol: TransportProtocol) -> tuple[bool, bool]:
        return self.all_marks(name, protocol)[:2]

    def all_marks(self, name: str, protocol: TransportProtocol) -> Marks:
        own = self._by_port.get((name, protocol.value))
        return (self.internal, self.external, self.shortcut) if own is None else own


def endpoint_port(sp: ServicePort, e: _EndpointAddress) -> int:
    """The endpoint's port of the same name and protocol (0: none, so not an endpoint of
    this service port, as kube-proxy reads EndpointSlices: an endpoint whose slice lists no
    ports serves no port, whatever the service's target port)."""
    for p in e.ports:
        if p.protocol == sp.protocol and p.name == sp.name:
            return p.port
    return 0


def ip_family(ip: str) -> int:
    """4 or 6; raises ValueError for something that is not an IP address."""
    return ipaddress.ip_address(ip).version


def address_family(ip: str) -> int:
    """4 or 6 for an address already checked valid, cheaply: an IPv6 address has a colon,
    an IPv4 one never (``ipaddress`` dominated large syncs)."""
    return 6 if ":" in ip else 4


def cidr_family(cidr: str) -> int:
    """4 or 6 (host bits allowed); raises ValueError for something that is not a CIDR."""
    return ipaddress.ip_network(cidr, strict=False).version


def of_family(cidrs: Iterable[str], family: int) -> tuple[str, ...]:
    """The CIDRs of ``family``, in order."""
    return tuple(c for c in cidrs if cidr_family(c) == family)


def second_of_a_family(cidrs: Sequence[str]) -> int | None:
    """The index of the first CIDR whose family an earlier one has (a Node's pod CIDRs are
    one per family); None when there is none."""
    seen: set[int] = set()
    for i, cidr in enumerate(cidrs):
        family = cidr_family(cidr)
        if family in seen:
            return i
        seen.add(family)
    return None


Object = Service | EndpointSlice | Node  # what a source reports
