"""Kubernetes objects (as the API serves them, decoded JSON/YAML) -> :mod:`kpng.model` values.

Every problem is an :class:`InvalidObject` naming the object and the field; objects that a
proxy must ignore (headless, ExternalName, the service-proxy-name and headless labels, FQDN
slices) come back as :class:`Ignored` so that a source can drop what it served before.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from kpng.iptext import canonical_ip
from kpng.model import (
    ANNOTATION_TOPOLOGY_HINTS,
    ANNOTATION_TOPOLOGY_MODE,
    ANNOTATION_TRIGGER_TIME,
    DEFAULT_AFFINITY_TIMEOUT,
    LABEL_HEADLESS,
    LABEL_REGION,
    LABEL_SERVICE_NAME,
    LABEL_SERVICE_PROXY_NAME,
    LABEL_ZONE,
    TO_BE_DELETED_TAINT,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
    cidr_family,
    name_problem,
    second_of_a_family,
    shown_name,
)

KINDS = ("Service", "EndpointSlice", "Node")
_E = TypeVar("_E", TransportProtocol, ServiceType, TrafficPolicy)


class InvalidObject(ValueError):
    """A Kubernetes object kpng cannot use; says which object and which field."""

    def __init__(self, kind: str, name: str, field: str, reason: str) -> None:
        super().__init__(f"{kind} {name}: {field}: {reason}")
        self.kind = kind
        self.name = name
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ignored:
    """An object a service proxy must not program, and why."""

    kind: str
    key: str
    reason: str


Parsed = Service | EndpointSlice | Node | Ignored


class _Fields:
    """Typed access to one object's fields; every failure names the object and the path."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name

    def fail(self, path: str, reason: str) -> InvalidObject:
        return InvalidObject(self.kind, self.name, path, reason)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"expected a mapping, got {type(value).__name__}")
        return value

    def items(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {type(value).__name__}")
        return value

    def string(self, value: Any, path: str, default: str = "") -> str:
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(path, f"expected a string, got {value!r}")
        return value

    def integer(self, value: Any, path: str, low: int, high: int, default: int = 0) -> int:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {value!r}")
        if not low <= value <= high:
            raise self.fail(path, f"{value} is out of range {low}-{high}")
        return value

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def ip(self, value: Any, path: str, family: int = 0) -> str:
        text = self.string(value, path)
        try:
            address, version = canonical_ip(text.strip())
        except ValueError:
            raise self.fail(path, f"{text!r} is not a valid IP address") from None
        if family and version != family:
            raise self.fail(path, f"{text!r} is not an IPv{family} address")
        return address

    def cidr(self, value: Any, path: str) -> str:
        text = self.string(value, path).strip()
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise self.fail(path, f"{text!r} is not a valid CIDR") from None

    def enum(self, cls: type[_E], value: Any, path: str, default: _E) -> _E:
        if value is None or value == "":
            return default
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise self.fail(path, f"{value!r} is not one of {allowed}") from None


def _meta(obj: Mapping[str, Any], kind: str, namespaced: bool) -> tuple[str, str, _Fields]:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise InvalidObject(kind, "?", "metadata", "missing")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidObject(kind, "?", "metadata.name", "missing")
    namespace = (meta.get("namespace") or "default") if namespaced else ""
    if not isinstance(namespace, str):
        raise InvalidObject(kind, name, "metadata.namespace", "expected a string")
    key = f"{namespace}/{name}" if namespaced else name
    return namespace, name, _Fields(kind, key)


def _labels(f: _Fields, meta: Any, field: str = "labels") -> Mapping[str, Any]:
    return f.mapping(f.mapping(meta, "metadata").get(field), f"metadata.{field}")


def _ignored_by_label(labels: Mapping[str, Any], proxy_name: str = "") -> str:
    """Why a proxy ignores an object with these labels ("" if it does not).

    By default any service-proxy-name label means another proxy serves the object; a proxy
    started with a name (``proxy_name``) serves exactly the objects labelled with it.
    """
    if proxy_name and labels.get(LABEL_SERVICE_PROXY_NAME) != proxy_name:
        return f"not labelled {LABEL_SERVICE_PROXY_NAME}={proxy_name}"
    if not proxy_name and LABEL_SERVICE_PROXY_NAME in labels:
        return f"labelled {LABEL_SERVICE_PROXY_NAME}"
    if LABEL_HEADLESS in labels:
        return f"labelled {LABEL_HEADLESS}"
    return ""


def parse_object(obj: Any, proxy_name: str = "") -> Parsed:
    """Parse one Service, EndpointSlice or Node; raises InvalidObject.

    ``proxy_name``: serve only the objects labelled ``service-proxy-name=<proxy_name>``
    (by default, only the objects without that label)."""
    if not isinstance(obj, Mapping):
        raise InvalidObject("?", "?", "", f"expected a Kubernetes object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind == "Service":
        return parse_service(obj, proxy_name)
    if kind == "EndpointSlice":
        return parse_endpoint_slice(obj, proxy_name)
    if kind == "Node":
        return parse_node(obj)
    raise InvalidObject(str(kind), "?", "kind", f"not one of {', '.join(KINDS)}")


def parse_service(obj: Mapping[str, Any], proxy_name: str = "") -> Service | Ignored:
    namespace, name, f = _meta(obj, "Service", namespaced=True)
    labels = _labels(f, obj["metadata"])
    reason = _ignored_by_label(labels, proxy_name)
    spec = f.mapping(obj.get("spec"), "spec")
    type_value = spec.get("type")
    if reason or type_value == "ExternalName":
        return Ignored("Service", f.name, reason or "type ExternalName")
    cluster_ips = _cluster_ips(f, spec)
    if cluster_ips is None:
        return Ignored("Service", f.name, "headless (clusterIP: None)")
    stype = f.enum(ServiceType, type_value, "spec.type", ServiceType.CLUSTER_IP)
    annotations = _labels(f, obj["metadata"], "annotations")
    topology_mode = annotations.get(ANNOTATION_TOPOLOGY_MODE) or annotations.get(
        ANNOTATION_TOPOLOGY_HINTS
    )
    return Service(
        namespace=namespace,
        name=name,
        type=stype,
        cluster_ips=cluster_ips,
        ports=tuple(
            _service_port(f, p, f"spec.ports[{i}]")
            for i, p in enumerate(f.items(spec.get("ports"), "spec.ports"))
        ),
        external_ips=tuple(
            f.ip(ip, f"spec.externalIPs[{i}]")
            for i, ip in enumerate(f.items(spec.get("externalIPs"), "spec.externalIPs"))
        ),
        load_balancer_ips=_lb_ips(f, obj) if stype is ServiceType.LOAD_BALANCER else (),
        load_balancer_source_ranges=tuple(
            f.cidr(c, f"spec.loadBalancerSourceRanges[{i}]")
            for i, c in enumerate(
                f.items(spec.get("loadBalancerSourceRanges"), "spec.loadBalancerSourceRanges")
            )
        ),
        affinity_timeout=_affinity_timeout(f, spec),
        internal_traffic_policy=f.enum(
            TrafficPolicy,
            spec.get("internalTrafficPolicy"),
            "spec.internalTrafficPolicy",
            TrafficPolicy.CLUSTER,
        ),
        external_traffic_policy=f.enum(
            TrafficPolicy,
            spec.get("externalTrafficPolicy"),
            "spec.externalTrafficPolicy",
            TrafficPolicy.CLUSTER,
        ),
        health_check_node_port=f.integer(
            spec.get("healthCheckNodePort"), "spec.healthCheckNodePort", 0, 65535
        ),
        traffic_distribution=f.string(spec.get("trafficDistribution"), "spec.trafficDistribution"),
        topology_mode=f.string(topology_mode, f"metadata.annotations[{ANNOTATION_TOPOLOGY_MODE}]"),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
    )


def _cluster_ips(f: _Fields, spec: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The service's cluster IPs, or None for a headless service."""
    ips = f.items(spec.get("clusterIPs"), "spec.clusterIPs")
    path = "spec.clusterIPs"
    if not ips and spec.get("clusterIP") is not None:
        ips, path = [spec.get("clusterIP")], "spec.clusterIP"
    if not ips:
        raise f.fail("spec.clusterIP", "missing (a proxied service needs a cluster IP)")
    if ips[0] == "None":
        return None
    parsed = tuple(f.ip(ip, f"{path}[{i}]") for i, ip in enumerate(ips))
    if len({ipaddress.ip_address(ip).version for ip in parsed}) != len(parsed):
        raise f.fail(path, "at most one cluster IP per family")
    return parsed


def _service_port(f: _Fields, raw: Any, path: str) -> ServicePort:
    p = f.mapping(raw, path)
    if p.get("port") is None:
        raise f.fail(f"{path}.port", "missing")
    port = f.integer(p.get("port"), f"{path}.port", 1, 65535)
    target: int | str = port
    raw_target = p.get("targetPort")
    if isinstance(raw_target, str) and raw_target.isdigit():
        raw_target = int(raw_target)
    if isinstance(raw_target, int) and not isinstance(raw_target, bool):
        target = f.integer(raw_target, f"{path}.targetPort", 1, 65535)
    elif raw_target is not None:
        target = f.string(raw_target, f"{path}.targetPort") or port
    return ServicePort(
        name=f.string(p.get("name"), f"{path}.name"),
        protocol=f.enum(
            TransportProtocol, p.get("protocol"), f"{path}.protocol", TransportProtocol.TCP
        ),
        port=port,
        target_port=target,
        node_port=f.integer(p.get("nodePort"), f"{path}.nodePort", 0, 65535),
    )


def _lb_ips(f: _Fields, obj: Mapping[str, Any]) -> tuple[str, ...]:
    status = f.mapping(obj.get("status"), "status")
    lb = f.mapping(status.get("loadBalancer"), "status.loadBalancer")
    ips: list[str] = []
    for i, raw in enumerate(f.items(lb.get("ingress"), "status.loadBalancer.ingress")):
        ingress = f.mapping(raw, f"status.loadBalancer.ingress[{i}]")
        if ingress.get("ip") is None or ingress.get("ipMode") == "Proxy":
            continue
        ips.append(f.ip(ingress.get("ip"), f"status.loadBalancer.ingress[{i}].ip"))
    return tuple(ips)


def _affinity_timeout(f: _Fields, spec: Mapping[str, Any]) -> int:
    affinity = spec.get("sessionAffinity") or "None"
    if affinity == "None":
        return 0
    if affinity != "ClientIP":
        raise f.fail("spec.sessionAffinity", f"{affinity!r} is not one of None, ClientIP")
    config = f.mapping(spec.get("sessionAffinityConfig"), "spec.sessionAffinityConfig")
    client = f.mapping(config.get("clientIP"), "spec.sessionAffinityConfig.clientIP")
    return f.integer(
        client.get("timeoutSeconds"),
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        1,
        86400,
        DEFAULT_AFFINITY_TIMEOUT,
    )


def parse_endpoint_slice(obj: Mapping[str, Any], proxy_name: str = "") -> EndpointSlice | Ignored:
    namespace, name, f = _meta(obj, "EndpointSlice", namespaced=True)
    labels = _labels(f, obj["metadata"])
    service = f.string(labels.get(LABEL_SERVICE_NAME), f"metadata.labels[{LABEL_SERVICE_NAME}]")
    reason = _ignored_by_label(labels, proxy_name) or (
        "" if service else f"no {LABEL_SERVICE_NAME} label"
    )
    address_type = f.string(obj.get("addressType"), "addressType")
    if address_type not in ("IPv4", "IPv6", "FQDN"):
        raise f.fail("addressType", f"{address_type!r} is not one of IPv4, IPv6, FQDN")
    if reason or address_type == "FQDN":
        return Ignored("EndpointSlice", f.name, reason or "addressType FQDN")
    ports = tuple(
        _endpoint_port(f, p, f"ports[{i}]")
        for i, p in enumerate(f.items(obj.get("ports"), "ports"))
        if isinstance(p, Mapping) and p.get("port") is not None
    )
    family = 4 if address_type == "IPv4" else 6
    endpoints = tuple(
        e
        for i, raw in enumerate(f.items(obj.get("endpoints"), "endpoints"))
        if (e := _endpoint(f, raw, f"endpoints[{i}]", family, ports)) is not None
    )
    annotations = _labels(f, obj["metadata"], "annotations")
    return EndpointSlice(
        namespace=namespace,
        name=name,
        service=service,
        address_type=address_type,
        endpoints=endpoints,
        trigger_time=_timestamp(f, annotations.get(ANNOTATION_TRIGGER_TIME)),
    )


def _endpoint_port(f: _Fields, raw: Any, path: str) -> EndpointPort:
    p = f.mapping(raw, path)
    return EndpointPort(
        name=f.string(p.get("name"), f"{path}.name"),
        protocol=f.enum(
            TransportProtocol, p.get("protocol"), f"{path}.protocol", TransportProtocol.TCP
        ),
        port=f.integer(p.get("port"), f"{path}.port", 1, 65535),
    )


def _endpoint(
    f: _Fields, raw: Any, path: str, family: int, ports: tuple[EndpointPort, ...]
) -> Endpoint | None:
    e = f.mapping(raw, path)
    addresses = f.items(e.get("addresses"), f"{path}.addresses")
    if not addresses:
        raise f.fail(f"{path}.addresses", "missing")
    conditions = f.mapping(e.get("conditions"), f"{path}.conditions")
    ready = f.boolean(conditions.get("ready"), f"{path}.conditions.ready", True)
    hints = f.mapping(e.get("hints"), f"{path}.hints")
    return Endpoint(
        ip=f.ip(addresses[0], f"{path}.addresses[0]", family),
        ports=ports,
        node=_node_name(f, e.get("nodeName"), f"{path}.nodeName"),
        zone=f.string(e.get("zone"), f"{path}.zone"),
        ready=ready,
        serving=f.boolean(conditions.get("serving"), f"{path}.conditions.serving", True),
        terminating=f.boolean(
            conditions.get("terminating"), f"{path}.conditions.terminating", False
        ),
        zone_hints=_hint_names(f, hints.get("forZones"), f"{path}.hints.forZones"),
        node_hints=_hint_names(f, hints.get("forNodes"), f"{path}.hints.forNodes"),
    )


def _hint_names(f: _Fields, raw: Any, path: str) -> frozenset[str]:
    names = set()
    for i, hint in enumerate(f.items(raw, path)):
        names.add(f.string(f.mapping(hint, f"{path}[{i}]").get("name"), f"{path}[{i}].name"))
    return frozenset(names)


def _timestamp(f: _Fields, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return _utc(value).timestamp()
    text = f.string(value, f"metadata.annotations[{ANNOTATION_TRIGGER_TIME}]")
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00"))).timestamp()
    except ValueError:
        raise f.fail(
            f"metadata.annotations[{ANNOTATION_TRIGGER_TIME}]", f"{text!r} is not RFC 3339"
        ) from None


def _utc(when: datetime) -> datetime:
    """A time without an offset is UTC (never the host's local time)."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _node_name(f: _Fields, value: Any, path: str) -> str:
    """An endpoint's ``nodeName``: "" (no node) or a Kubernetes name, which the bus's
    decoders require of every node name."""
    name = f.string(value, path)
    problem = name and name_problem(name)
    if problem:
        raise f.fail(path, f"{shown_name(name)}: {problem}")
    return name


def parse_node(obj: Mapping[str, Any]) -> Node:
    _, name, f = _meta(obj, "Node", namespaced=False)
    problem = name_problem(name)
    if problem:  # its name becomes a bus subject: one the server refuses cuts the watcher off
        raise InvalidObject("Node", shown_name(name), "metadata.name", problem)
    labels = _labels(f, obj["metadata"])
    status = f.mapping(obj.get("status"), "status")
    spec = f.mapping(obj.get("spec"), "spec")
    addresses = []
    for i, raw in enumerate(f.items(status.get("addresses"), "status.addresses")):
        address = f.mapping(raw, f"status.addresses[{i}]")
        if address.get("type") in ("InternalIP", "ExternalIP"):
            addresses.append(f.ip(address.get("address"), f"status.addresses[{i}].address"))
    return Node(
        name=name,
        addresses=tuple(addresses),
        zone=f.string(labels.get(LABEL_ZONE), f"metadata.labels[{LABEL_ZONE}]"),
        region=f.string(labels.get(LABEL_REGION), f"metadata.labels[{LABEL_REGION}]"),
        pod_cidrs=_pod_cidrs(f, spec),
        deleting=_deleting(f, obj["metadata"], spec),
    )


def _deleting(f: _Fields, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> bool:
    """Whether the Node is going away, as kube-proxy's health server judges it: it has a
    ``metadata.deletionTimestamp``, or the cluster autoscaler's ``ToBeDeletedByClusterAutoscaler``
    taint."""
    if meta.get("deletionTimestamp"):
        f.string(meta["deletionTimestamp"], "metadata.deletionTimestamp")
        return True
    for i, raw in enumerate(f.items(spec.get("taints"), "spec.taints")):
        taint = f.mapping(raw, f"spec.taints[{i}]")
        if f.string(taint.get("key"), f"spec.taints[{i}].key") == TO_BE_DELETED_TAINT:
            return True
    return False


def _pod_cidrs(f: _Fields, spec: Mapping[str, Any]) -> tuple[str, ...]:
    """``spec.podCIDRs`` (else the older ``spec.podCIDR``): at most one per family, as the
    API server allows."""
    path, raw = "spec.podCIDRs", spec.get("podCIDRs")
    if not raw and spec.get("podCIDR"):
        path, raw = "spec.podCIDR", [spec["podCIDR"]]
    items = f.items(raw, path)
    wheres = [f"{path}[{i}]" if path.endswith("s") else path for i in range(len(items))]
    out = tuple(f.cidr(item, where) for item, where in zip(items, wheres, strict=True))
    if (i := second_of_a_family(out)) is not None:
        family = cidr_family(out[i])
        raise f.fail(wheres[i], f"a second IPv{family} pod CIDR ({out[i]}): one per family")
    return out
