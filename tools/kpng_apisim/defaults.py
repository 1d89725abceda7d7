"""Defaulting and allocation, as the API server does on create and update."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from kpng_apisim.errors import ApiError, JsonObject, invalid

NODE_PORT_RANGE = (30000, 32767)
_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True, slots=True)
class AllocatorConfig:
    """Where service cluster IPs and node ports come from."""

    service_cidr: str = "10.96.0.0/16"
    node_port_range: tuple[int, int] = NODE_PORT_RANGE


@dataclass(slots=True)
class ServiceAllocator:
    """Hands out cluster IPs and node ports; the state behind service defaulting."""

    config: AllocatorConfig = AllocatorConfig()
    ips: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    _next_ip: int = 10
    _next_port: int = 0
    _journal: list[str | int] = field(default_factory=list)

    def begin(self) -> None:
        """Start recording allocations, so that ``rollback`` can give them back."""
        self._journal.clear()

    def rollback(self) -> None:
        """Give back what was handed out since the journal was last cleared."""
        for value in self._journal:
            if isinstance(value, str):
                self.ips.discard(value)
            else:
                self.ports.discard(value)
        self._journal.clear()

    def allocate_ip(self) -> str:
        net = ipaddress.ip_network(self.config.service_cidr)
        size = net.num_addresses - 2
        for _ in range(size):
            offset = (self._next_ip - 1) % size + 1
            self._next_ip = offset + 1
            ip = str(net.network_address + offset)
            if ip not in self.ips:
                self.ips.add(ip)
                self._journal.append(ip)
                return ip
        raise ApiError(500, f"no cluster IP left in {self.config.service_cidr}")

    def reserve_ip(self, ip: str, name: str) -> None:
        try:
            in_range = ipaddress.ip_address(ip) in ipaddress.ip_network(self.config.service_cidr)
        except ValueError:
            in_range = False
        if not in_range:
            raise invalid("Service", name, f"spec.clusterIP: Invalid value: {ip!r}: not in range")
        if ip in self.ips:
            raise invalid("Service", name, f"spec.clusterIP: Invalid value: {ip!r}: allocated")
        self.ips.add(ip)
        self._journal.append(ip)

    def allocate_port(self) -> int:
        low, high = self.config.node_port_range
        size = high - low + 1
        for _ in range(size):
            port = low + self._next_port % size
            self._next_port += 1
            if port not in self.ports:
                self.ports.add(port)
                self._journal.append(port)
                return port
        raise ApiError(500, "no node port left")

    def reserve_port(self, port: int, name: str) -> None:
        low, high = self.config.node_port_range
        if not low <= port <= high:
            raise invalid("Service", name, f"nodePort: Invalid value: {port}: out of range")
        if port in self.ports:
            raise invalid("Service", name, f"nodePort: Invalid value: {port}: allocated")
        self.ports.add(port)
        self._journal.append(port)

    def release(self, svc: JsonObject) -> None:
        ips, ports = service_allocations(svc)
        self.ips -= ips
        self.ports -= ports


def service_allocations(svc: JsonObject) -> tuple[set[str], set[int]]:
    """The cluster IPs and node ports a stored service holds."""
    spec = svc.get("spec", {})
    ips = {ip for ip in spec.get("clusterIPs", []) if ip and ip != "None"}
    ports = {int(p["nodePort"]) for p in spec.get("ports", []) if p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        ports.add(int(spec["healthCheckNodePort"]))
    return ips, ports


def _default_ports(spec: JsonObject) -> None:
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _carry_over(spec: JsonObject, old_spec: JsonObject) -> None:
    """Keep allocated values an update left unset, as the API server does."""
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
        spec.setdefault("clusterIPs", old_spec.get("clusterIPs"))
    if spec.get("type") in _NODE_PORT_TYPES:
        old_ports = {
            (p.get("port"), p.get("protocol", "TCP")): p for p in old_spec.get("ports", [])
        }
        for port in spec.get("ports") or []:
            old = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if not port.get("nodePort") and old and old.get("nodePort"):
                port["nodePort"] = old["nodePort"]
        if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
            spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]


def _allocate(spec: JsonObject, alloc: ServiceAllocator, name: str, held: set[Any]) -> None:
    svc_type = spec["type"]
    if svc_type != "ExternalName":
        ip = spec.get("clusterIP")
        if not ip:
            spec["clusterIP"] = alloc.allocate_ip()
        elif ip != "None" and ip not in held:
            alloc.reserve_ip(ip, name)
        spec["clusterIPs"] = [spec["clusterIP"]]
    if svc_type in _NODE_PORT_TYPES:
        for port in spec.get("ports") or []:
            if not port.get("nodePort"):
                port["nodePort"] = alloc.allocate_port()
            elif port["nodePort"] not in held:
                alloc.reserve_port(int(port["nodePort"]), name)
        spec.setdefault("externalTrafficPolicy", "Cluster")
    else:
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    needs_hc = svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if needs_hc and not spec.get("healthCheckNodePort"):
        spec["healthCheckNodePort"] = alloc.allocate_port()
    elif needs_hc and spec["healthCheckNodePort"] not in held:
        alloc.reserve_port(int(spec["healthCheckNodePort"]), name)
    elif not needs_hc:
        spec.pop("healthCheckNodePort", None)


def default_service(svc: JsonObject, old: JsonObject | None, alloc: ServiceAllocator) -> None:
    """Fill in the defaults and allocations of a service being created or updated.

    All or nothing: on error, whatever this call allocated is given back.
    """
    alloc.begin()
    try:
        _default_service(svc, old, alloc)
    except Exception:
        alloc.rollback()
        raise
    alloc.begin()


def _default_service(svc: JsonObject, old: JsonObject | None, alloc: ServiceAllocator) -> None:
    name = svc.get("metadata", {}).get("name", "")
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise invalid("Service", name, "spec: must be an object")
    spec.setdefault("type", "ClusterIP")
    if spec["type"] not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        raise invalid("Service", name, f"spec.type: Unsupported value: {spec['type']!r}")
    if spec["type"] == "ExternalName" and not spec.get("externalName"):
        raise invalid("Service", name, "spec.externalName: Required value")
    spec.setdefault("sessionAffinity", "None")
    _default_ports(spec)
    held_ips, held_ports = service_allocations(old) if old else (set(), set())
    if old is not None:
        _carry_over(spec, old.get("spec", {}))
    _allocate(spec, alloc, name, held_ips | held_ports)
    if spec["type"] != "ExternalName":
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    svc.setdefault("status", {}).setdefault("loadBalancer", {})
    new_ips, new_ports = service_allocations(svc)
    alloc.ips -= held_ips - new_ips
    alloc.ports -= held_ports - new_ports


def default_namespace(ns: JsonObject) -> None:
    ns.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    ns.setdefault("status", {}).setdefault("phase", "Active")
    labels = ns.setdefault("metadata", {}).setdefault("labels", {})
    labels.setdefault("kubernetes.io/metadata.name", ns["metadata"].get("name", ""))


def validate_endpoint_slice(eps: JsonObject) -> None:
    name = eps.get("metadata", {}).get("name", "")
    if eps.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
        raise invalid("EndpointSlice", name, "addressType: Required value")
    endpoints = eps.get("endpoints")
    if endpoints is None:
        eps["endpoints"] = []
    elif not isinstance(endpoints, list):
        raise invalid("EndpointSlice", name, "endpoints: must be a list")
