"""kpng.parse: Kubernetes objects (decoded JSON/YAML) -> model values, Ignored or InvalidObject."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from kpng.model import (
    DEFAULT_AFFINITY_TIMEOUT,
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    TransportProtocol,
)
from kpng.parse import (
    Ignored,
    InvalidObject,
    parse_endpoint_slice,
    parse_node,
    parse_object,
    parse_service,
)
from tests.objects import HTTP, http_port


def service_obj(spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
    }
    base.update(spec or {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", **meta},
        "spec": base,
    }


def slice_obj(endpoints: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "web-abcde",
            "namespace": "shop",
            "labels": {"kubernetes.io/service-name": "web"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": endpoints
        if endpoints is not None
        else [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
    }
    obj.update(extra)
    return obj


def node_obj(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "node-a1",
            "labels": {
                "topology.kubernetes.io/zone": "zone-a",
                "topology.kubernetes.io/region": "region-1",
                "kubernetes.io/hostname": "node-a1",
            },
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.11"},
                {"type": "Hostname", "address": "node-a1"},
                {"type": "ExternalIP", "address": "203.0.113.11"},
            ],
            **status,
        },
    }


def parsed_service(obj: dict[str, Any]) -> Service:
    result = parse_object(obj)
    assert isinstance(result, Service), result
    return result


def parsed_slice(obj: dict[str, Any]) -> EndpointSlice:
    result = parse_object(obj)
    assert isinstance(result, EndpointSlice), result
    return result


def invalid(obj: Any) -> InvalidObject:
    with pytest.raises(InvalidObject) as info:
        parse_object(obj)
    return info.value


# -- Service --------------------------------------------------------------------------------
def test_service_minimal_defaults() -> None:
    s = parsed_service(service_obj())
    assert s == Service(
        namespace="shop",
        name="web",
        type=ServiceType.CLUSTER_IP,
        cluster_ips=("10.96.0.10",),
        ports=(http_port(),),
    )
    assert s.key == "shop/web"
    assert s.affinity_timeout == 0
    assert s.internal_traffic_policy is TrafficPolicy.CLUSTER
    assert s.external_traffic_policy is TrafficPolicy.CLUSTER
    assert not s.externally_accessible
    assert not s.topology_enabled


def test_service_namespace_defaults_to_default() -> None:
    obj = service_obj()
    del obj["metadata"]["namespace"]
    assert parsed_service(obj).key == "default/web"


def test_service_every_field() -> None:
    obj = service_obj(
        {
            "type": "LoadBalancer",
            "clusterIPs": ["10.96.0.10", "fd00:10:96::a"],
            "ipFamilies": ["IPv4", "IPv6"],
            "ports": [
                {
                    "name": "http",
                    "protocol": "TCP",
                    "port": 80,
                    "targetPort": "web",
                    "nodePort": 30080,
                },
                {
                    "name": "dns",
                    "protocol": "UDP",
                    "port": 53,
                    "targetPort": 5353,
                    "nodePort": 31053,
                },
                {"name": "sctp", "protocol": "SCTP", "port": 9999, "nodePort": 32000},
            ],
            "externalIPs": ["203.0.113.7"],
            "loadBalancerSourceRanges": ["10.0.0.0/8", "192.168.0.0/16"],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
            "internalTrafficPolicy": "Local",
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32100,
            "trafficDistribution": "PreferClose",
        },
        annotations={"service.kubernetes.io/topology-mode": "Auto"},
    )
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}
    s = parsed_service(obj)
    assert s == Service(
        namespace="shop",
        name="web",
        type=ServiceType.LOAD_BALANCER,
        cluster_ips=("10.96.0.10", "fd00:10:96::a"),
        ports=(
            ServicePort("http", TransportProtocol.TCP, 80, "web", 30080),
            ServicePort("dns", TransportProtocol.UDP, 53, 5353, 31053),
            ServicePort("sctp", TransportProtocol.SCTP, 9999, 9999, 32000),
        ),
        external_ips=("203.0.113.7",),
        load_balancer_ips=("198.51.100.1",),
        load_balancer_source_ranges=("10.0.0.0/8", "192.168.0.0/16"),
        affinity_timeout=300,
        internal_traffic_policy=TrafficPolicy.LOCAL,
        external_traffic_policy=TrafficPolicy.LOCAL,
        health_check_node_port=32100,
        traffic_distribution="PreferClose",
        topology_mode="Auto",
    )
    assert s.externally_accessible
    assert s.topology_enabled


def test_service_protocol_defaults_to_tcp_and_target_port_to_port() -> None:
    s = parsed_service(service_obj({"ports": [{"port": 443}]}))
    assert s.ports == (ServicePort("", TransportProtocol.TCP, 443, 443, 0),)


def test_service_without_ports() -> None:
    assert parsed_service(service_obj({"ports": None})).ports == ()


@pytest.mark.parametrize(
    ("target", "expected"),
    [(8080, 8080), ("8080", 8080), ("http-alt", "http-alt"), ("", 80), (None, 80)],
)
def test_service_target_port(target: Any, expected: int | str) -> None:
    s = parsed_service(service_obj({"ports": [{"port": 80, "targetPort": target}]}))
    assert s.ports[0].target_port == expected


def test_service_cluster_ip_without_cluster_ips() -> None:
    obj = service_obj()
    del obj["spec"]["clusterIPs"]
    assert parsed_service(obj).cluster_ips == ("10.96.0.10",)


def test_service_dual_stack_ipv6_first() -> None:
    s = parsed_service(
        service_obj({"clusterIP": "fd00::a", "clusterIPs": ["fd00::a", "10.96.0.9"]})
    )
    assert s.cluster_ips == ("fd00::a", "10.96.0.9")


def test_service_ipv6_addresses_are_normalised() -> None:
    s = parsed_service(service_obj({"clusterIPs": ["FD00:0:0::A"]}))
    assert s.cluster_ips == ("fd00::a",)


def test_service_two_cluster_ips_of_one_family_are_invalid() -> None:
    error = invalid(service_obj({"clusterIPs": ["10.96.0.10", "10.96.0.11"]}))
    assert error.name == "shop/web"
    assert error.field == "spec.clusterIPs"


def test_service_without_cluster_ip_is_invalid() -> None:
    obj = service_obj()
    del obj["spec"]["clusterIP"], obj["spec"]["clusterIPs"]
    error = invalid(obj)
    assert (error.kind, error.name, error.field) == ("Service", "shop/web", "spec.clusterIP")


@pytest.mark.parametrize("value", [None, "", "None"])
def test_service_session_affinity_none(value: str | None) -> None:
    assert parsed_service(service_obj({"sessionAffinity": value})).affinity_timeout == 0


def test_service_session_affinity_default_timeout() -> None:
    s = parsed_service(service_obj({"sessionAffinity": "ClientIP"}))
    assert s.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    s = parsed_service(
        service_obj({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}})
    )
    assert s.affinity_timeout == 10800


def test_service_load_balancer_source_ranges_are_normalised() -> None:
    s = parsed_service(
        service_obj(
            {
                "type": "LoadBalancer",
                "loadBalancerSourceRanges": [" 10.0.0.0/8 ", "10.1.2.3/8", "192.168.1.7/32"],
            }
        )
    )
    assert s.load_balancer_source_ranges == ("10.0.0.0/8", "10.0.0.0/8", "192.168.1.7/32")


def test_service_lb_ingress_ip_mode_proxy_and_hostnames_are_skipped() -> None:
    obj = service_obj({"type": "LoadBalancer"})
    obj["status"] = {
        "loadBalancer": {
            "ingress": [
                {"ip": "198.51.100.1", "ipMode": "VIP"},
                {"ip": "198.51.100.2", "ipMode": "Proxy"},
                {"hostname": "lb.example.com"},
                {"ip": "198.51.100.3"},
            ]
        }
    }
    assert parsed_service(obj).load_balancer_ips == ("198.51.100.1", "198.51.100.3")


def test_service_lb_ingress_is_only_read_for_load_balancers() -> None:
    obj = service_obj({"type": "NodePort"})
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}}
    assert parsed_service(obj).load_balancer_ips == ()


def test_service_empty_traffic_policies_default_to_cluster() -> None:
    s = parsed_service(service_obj({"externalTrafficPolicy": "", "internalTrafficPolicy": None}))
    assert s.external_traffic_policy is TrafficPolicy.CLUSTER
    assert s.internal_traffic_policy is TrafficPolicy.CLUSTER


def test_service_legacy_topology_aware_hints_annotation() -> None:
    s = parsed_service(
        service_obj(annotations={"service.kubernetes.io/topology-aware-hints": "auto"})
    )
    assert s.topology_mode == "auto"
    assert s.topology_enabled


@pytest.mark.parametrize(
    ("spec", "meta", "reason"),
    [
        ({"clusterIP": "None", "clusterIPs": ["None"]}, {}, "headless"),
        ({"clusterIP": "None", "clusterIPs": None}, {}, "headless"),
        (
            {"type": "ExternalName", "externalName": "db.example.com", "clusterIP": None},
            {},
            "ExternalName",
        ),
        ({}, {"labels": {"service.kubernetes.io/service-proxy-name": "other"}}, "proxy-name"),
        ({}, {"labels": {"service.kubernetes.io/service-proxy-name": ""}}, "proxy-name"),
        ({}, {"labels": {"service.kubernetes.io/headless": ""}}, "headless"),
    ],
)
def test_service_ignored(spec: dict[str, Any], meta: dict[str, Any], reason: str) -> None:
    result = parse_object(service_obj(spec, **meta))
    assert isinstance(result, Ignored)
    assert (result.kind, result.key) == ("Service", "shop/web")
    assert reason in result.reason


# -- EndpointSlice --------------------------------------------------------------------------
def test_slice_every_field() -> None:
    obj = slice_obj(
        [
            {
                "addresses": ["10.244.1.5"],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": "node-a1",
                "zone": "zone-a",
                "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop"},
                "hints": {
                    "forZones": [{"name": "zone-a"}, {"name": "zone-b"}],
                    "forNodes": [{"name": "node-a1"}],
                },
            }
        ],
        ports=[
            {"name": "http", "protocol": "TCP", "port": 8080},
            {"name": "dns", "protocol": "UDP", "port": 53, "appProtocol": "dns"},
            {"port": 9090},
        ],
    )
    obj["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T12:00:00Z"
    }
    ports = (
        EndpointPort("http", TransportProtocol.TCP, 8080),
        EndpointPort("dns", TransportProtocol.UDP, 53),
        EndpointPort("", TransportProtocol.TCP, 9090),
    )
    assert parsed_slice(obj) == EndpointSlice(
        namespace="shop",
        name="web-abcde",
        service="web",
        address_type="IPv4",
        endpoints=(
            Endpoint(
                ip="10.244.1.5",
                ports=ports,
                node="node-a1",
                zone="zone-a",
                ready=True,
                serving=True,
                terminating=False,
                zone_hints=frozenset({"zone-a", "zone-b"}),
                node_hints=frozenset({"node-a1"}),
            ),
        ),
        trigger_time=datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp(),
    )


def test_slice_keys() -> None:
    s = parsed_slice(slice_obj())
    assert s.key == "shop/web-abcde"
    assert s.service_key == "shop/web"


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        (None, (True, True, False)),
        ({}, (True, True, False)),
        ({"ready": None, "serving": None, "terminating": None}, (True, True, False)),
        ({"ready": False}, (False, True, False)),
        ({"ready": False, "terminating": True}, (False, True, True)),
        ({"ready": True}, (True, True, False)),
        ({"ready": False, "serving": True}, (False, True, False)),
        ({"ready": False, "serving": True, "terminating": True}, (False, True, True)),
        ({"ready": False, "serving": False, "terminating": True}, (False, False, True)),
        ({"ready": True, "serving": False}, (True, False, False)),
    ],
)
def test_slice_conditions(
    conditions: dict[str, Any] | None, expected: tuple[bool, bool, bool]
) -> None:
    """Nil ready and serving mean true, nil terminating false (as kube-proxy reads them)."""
    endpoint: dict[str, Any] = {"addresses": ["10.244.1.5"]}
    if conditions is not None:
        endpoint["conditions"] = conditions
    (e,) = parsed_slice(slice_obj([endpoint])).endpoints
    assert (e.ready, e.serving, e.terminating) == expected


def test_slice_endpoint_defaults() -> None:
    (e,) = parsed_slice(slice_obj([{"addresses": ["10.244.1.5"]}])).endpoints
    assert e == Endpoint("10.244.1.5", HTTP)
    assert (e.node, e.zone, e.zone_hints, e.node_hints) == ("", "", frozenset(), frozenset())
    assert e.usable


def test_slice_uses_first_address_only() -> None:
    (e,) = parsed_slice(slice_obj([{"addresses": ["10.244.1.5", "10.244.1.6"]}])).endpoints
    assert e.ip == "10.244.1.5"


def test_slice_ipv6() -> None:
    obj = slice_obj([{"addresses": ["FD00:244::5"]}], addressType="IPv6")
    (e,) = parsed_slice(obj).endpoints
    assert e.ip == "fd00:244::5"


def test_slice_address_of_the_wrong_family_is_invalid() -> None:
    error = invalid(slice_obj([{"addresses": ["fd00::5"]}]))
    assert error.field == "endpoints[0].addresses[0]"
    assert "shop/web-abcde" in str(error)


def test_slice_ports_without_port_number_are_skipped() -> None:
    s = parsed_slice(slice_obj(ports=[{"name": "all", "port": None}]))
    assert s.endpoints[0].ports == ()


def test_slice_without_endpoints() -> None:
    assert parsed_slice(slice_obj([])).endpoints == ()
    obj = slice_obj()
    obj["endpoints"] = None
    assert parsed_slice(obj).endpoints == ()


def test_slice_trigger_time_absent_and_datetime() -> None:
    assert parsed_slice(slice_obj()).trigger_time is None
    obj = slice_obj()
    when = datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC)
    obj["metadata"]["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": when}
    assert parsed_slice(obj).trigger_time == when.timestamp()
    obj["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T12:00:01+00:00"
    }
    assert parsed_slice(obj).trigger_time == when.timestamp()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"addressType": "FQDN"}, "FQDN"),
        ({"labels": {}}, "service-name"),
        ({"labels": {"kubernetes.io/service-name": ""}}, "service-name"),
        (
            {
                "labels": {
                    "kubernetes.io/service-name": "web",
                    "service.kubernetes.io/service-proxy-name": "other",
                }
            },
            "proxy-name",
        ),
        (
            {
                "labels": {
                    "kubernetes.io/service-name": "web",
                    "service.kubernetes.io/headless": "",
                }
            },
            "headless",
        ),
    ],
)
def test_slice_ignored(change: dict[str, Any], reason: str) -> None:
    obj = slice_obj()
    if "labels" in change:
        obj["metadata"]["labels"] = change["labels"]
    else:
        obj.update(change)
    if change.get("addressType") == "FQDN":
        obj["endpoints"] = [{"addresses": ["web.example.com"]}]
    result = parse_object(obj)
    assert isinstance(result, Ignored)
    assert (result.kind, result.key) == ("EndpointSlice", "shop/web-abcde")
    assert reason in result.reason


# -- Node -----------------------------------------------------------------------------------
def test_node_every_field() -> None:
    node = parse_object(node_obj())
    assert node == Node(
        name="node-a1",
        addresses=("192.168.1.11", "203.0.113.11"),
        zone="zone-a",
        region="region-1",
    )


def test_node_pod_cidrs() -> None:
    """spec.podCIDRs, else the older spec.podCIDR alone, normalised as the API server
    stores them."""
    obj = node_obj()
    obj["spec"] = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::5/64"]}
    assert parse_node(obj).pod_cidrs == ("10.244.1.0/24", "fd00:1::/64")
    obj["spec"] = {"podCIDR": "10.244.2.0/24"}
    assert parse_node(obj).pod_cidrs == ("10.244.2.0/24",)
    obj["spec"] = {"podCIDRs": [], "providerID": "kind://x"}
    assert parse_node(obj).pod_cidrs == ()


@pytest.mark.parametrize(
    ("change", "deleting"),
    [
        ({"metadata.deletionTimestamp": "2026-12-07T10:00:00Z"}, True),
        ({"spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "value": "1"}]}}, True),
        ({"spec": {"taints": [{"key": "DeletionCandidateOfClusterAutoscaler"}]}}, False),
        ({"spec": {"taints": [{"key": "node.kubernetes.io/unschedulable"}]}}, False),
        ({}, False),
    ],
)
def test_node_deleting(change: dict[str, Any], deleting: bool) -> None:
    """Going away as kube-proxy's health server judges it: a deletionTimestamp, or the
    cluster autoscaler's ToBeDeletedByClusterAutoscaler taint (not its softer candidate
    taint, nor cordoning)."""
    obj = node_obj()
    for path, value in change.items():
        obj = _set(obj, path, value)
    assert parse_node(obj).deleting is deleting


def test_node_defaults() -> None:
    node = parse_node({"kind": "Node", "metadata": {"name": "bare"}})
    assert node == Node("bare", (), "", "")


def test_node_ignores_namespace() -> None:
    obj = node_obj()
    obj["metadata"]["namespace"] = "default"
    assert parse_node(obj).name == "node-a1"


# -- invalid input --------------------------------------------------------------------------
def _set(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the dotted ``path`` (``[i]`` for list items) set to ``value``."""
    obj = copy.deepcopy(obj)
    parts = path.replace("[", ".").replace("]", "").split(".")
    target: Any = obj
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return obj


SERVICE_ERRORS = [
    ("spec.ports.0.port", 0, "spec.ports[0].port", "out of range"),
    ("spec.ports.0.port", 65536, "spec.ports[0].port", "out of range"),
    ("spec.ports.0.port", "80", "spec.ports[0].port", "integer"),
    ("spec.ports.0.port", True, "spec.ports[0].port", "integer"),
    ("spec.ports.0.port", None, "spec.ports[0].port", "missing"),
    ("spec.ports.0.targetPort", 70000, "spec.ports[0].targetPort", "out of range"),
    ("spec.ports.0.targetPort", "0", "spec.ports[0].targetPort", "out of range"),
    ("spec.ports.0.targetPort", 1.5, "spec.ports[0].targetPort", "string"),
    ("spec.ports.0.nodePort", 65536, "spec.ports[0].nodePort", "out of range"),
    ("spec.ports.0.nodePort", -1, "spec.ports[0].nodePort", "out of range"),
    ("spec.ports.0.protocol", "ICMP", "spec.ports[0].protocol", "ICMP"),
    ("spec.ports.0.name", 7, "spec.ports[0].name", "string"),
    ("spec.ports.0", "http", "spec.ports[0]", "mapping"),
    ("spec.ports", {"port": 80}, "spec.ports", "list"),
    ("spec.clusterIPs.0", "10.96.0.300", "spec.clusterIPs[0]", "10.96.0.300"),
    ("spec.clusterIPs", "10.96.0.10", "spec.clusterIPs", "list"),
    ("spec.clusterIPs.0", 167772170, "spec.clusterIPs[0]", "string"),
    ("spec.type", "Magic", "spec.type", "Magic"),
    ("spec.internalTrafficPolicy", "Nearby", "spec.internalTrafficPolicy", "Nearby"),
    ("spec.externalTrafficPolicy", "local", "spec.externalTrafficPolicy", "local"),
    ("spec.sessionAffinity", "Cookie", "spec.sessionAffinity", "Cookie"),
    (
        "spec.sessionAffinityConfig",
        {"clientIP": {"timeoutSeconds": 0}},
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "out of range",
    ),
    (
        "spec.sessionAffinityConfig",
        {"clientIP": {"timeoutSeconds": 86401}},
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
        "out of range",
    ),
    (
        "spec.sessionAffinityConfig",
        {"clientIP": "yes"},
        "spec.sessionAffinityConfig.clientIP",
        "mapping",
    ),
    ("spec.externalIPs", ["203.0.113.7", "nope"], "spec.externalIPs[1]", "nope"),
    ("spec.loadBalancerSourceRanges", ["10.0.0.0/33"], "spec.loadBalancerSourceRanges[0]", "CIDR"),
    ("spec.loadBalancerSourceRanges", [8], "spec.loadBalancerSourceRanges[0]", "string"),
    ("spec.healthCheckNodePort", 70000, "spec.healthCheckNodePort", "out of range"),
    ("spec.trafficDistribution", 1, "spec.trafficDistribution", "string"),
    ("spec", ["not", "a", "mapping"], "spec", "mapping"),
    ("metadata.labels", ["x"], "metadata.labels", "mapping"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), SERVICE_ERRORS)
def test_service_invalid(path: str, value: Any, field: str, reason: str) -> None:
    obj = service_obj({"sessionAffinity": "ClientIP"} if "sessionAffinity" in path else {})
    error = invalid(_set(obj, path, value))
    assert (error.kind, error.name, error.field) == ("Service", "shop/web", field)
    assert reason in error.reason
    assert str(error).startswith(f"Service shop/web: {field}: ")


def test_service_invalid_lb_ingress_ip() -> None:
    obj = service_obj({"type": "LoadBalancer"})
    obj["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"ip": "x.y"}]}}
    error = invalid(obj)
    assert (error.name, error.field) == ("shop/web", "status.loadBalancer.ingress[1].ip")


def test_service_invalid_annotation_type() -> None:
    error = invalid(service_obj(annotations={"service.kubernetes.io/topology-mode": True}))
    assert error.name == "shop/web"
    assert "service.kubernetes.io/topology-mode" in error.field


SLICE_ERRORS: list[tuple[str, Any, str, str]] = [
    ("addressType", "IPv5", "addressType", "IPv5"),
    ("addressType", None, "addressType", "not one of"),
    ("ports.0.port", 0, "ports[0].port", "out of range"),
    ("ports.0.port", "8080", "ports[0].port", "integer"),
    ("ports.0.protocol", "GRE", "ports[0].protocol", "GRE"),
    ("endpoints.0.addresses", [], "endpoints[0].addresses", "missing"),
    ("endpoints.0.addresses", "10.244.1.5", "endpoints[0].addresses", "list"),
    ("endpoints.0.addresses.0", "10.244.1.500", "endpoints[0].addresses[0]", "10.244.1.500"),
    ("endpoints.0.conditions.ready", "yes", "endpoints[0].conditions.ready", "true or false"),
    ("endpoints.0.conditions.serving", 1, "endpoints[0].conditions.serving", "true or false"),
    (
        "endpoints.0.conditions.terminating",
        "no",
        "endpoints[0].conditions.terminating",
        "true or false",
    ),
    ("endpoints.0.conditions", "ready", "endpoints[0].conditions", "mapping"),
    ("endpoints.0.nodeName", 5, "endpoints[0].nodeName", "string"),
    ("endpoints.0.zone", ["zone-a"], "endpoints[0].zone", "string"),
    ("endpoints.0.hints", {"forZones": "zone-a"}, "endpoints[0].hints.forZones", "list"),
    (
        "endpoints.0.hints",
        {"forNodes": [{"name": 3}]},
        "endpoints[0].hints.forNodes[0].name",
        "string",
    ),
    ("endpoints", {"addresses": []}, "endpoints", "list"),
    (
        "metadata.annotations",
        {"endpoints.kubernetes.io/last-change-trigger-time": "yesterday"},
        "metadata.annotations[endpoints.kubernetes.io/last-change-trigger-time]",
        "RFC 3339",
    ),
    (
        "metadata.labels",
        {"kubernetes.io/service-name": 12},
        "metadata.labels[kubernetes.io/service-name]",
        "string",
    ),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), SLICE_ERRORS)
def test_slice_invalid(path: str, value: Any, field: str, reason: str) -> None:
    error = invalid(_set(slice_obj(), path, value))
    assert (error.kind, error.name, error.field) == ("EndpointSlice", "shop/web-abcde", field)
    assert reason in error.reason
    assert str(error).startswith(f"EndpointSlice shop/web-abcde: {field}: ")


NODE_ERRORS = [
    ("status.addresses.0.address", "192.168.1.300", "status.addresses[0].address"),
    ("status.addresses.0", "192.168.1.11", "status.addresses[0]"),
    ("status.addresses", {"type": "InternalIP"}, "status.addresses"),
    ("metadata.labels", {"topology.kubernetes.io/zone": 1}, "metadata.labels[topology."),
    ("status", "Ready", "status"),
    ("spec", {"podCIDRs": ["10.244.1.0/33"]}, "spec.podCIDRs[0]"),
    ("spec", {"podCIDRs": ["10.244.1.0/24", "10.244.9.0/24"]}, "spec.podCIDRs[1]"),
    ("spec", {"podCIDRs": "10.244.1.0/24"}, "spec.podCIDRs"),
    ("spec", {"podCIDR": "node-a"}, "spec.podCIDR"),
    ("spec", [], "spec"),
    ("spec", {"taints": [{"key": 7}]}, "spec.taints[0].key"),
    ("spec", {"taints": ["ToBeDeletedByClusterAutoscaler"]}, "spec.taints[0]"),
    ("metadata.deletionTimestamp", 1733565600, "metadata.deletionTimestamp"),
]


@pytest.mark.parametrize(("path", "value", "field"), NODE_ERRORS)
def test_node_invalid(path: str, value: Any, field: str) -> None:
    error = invalid(_set(node_obj(), path, value))
    assert (error.kind, error.name) == ("Node", "node-a1")
    assert error.field.startswith(field)
    assert str(error).startswith("Node node-a1: ")


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"kind": "Service"}, "metadata"),
        ({"kind": "Service", "metadata": {}}, "metadata.name"),
        ({"kind": "Service", "metadata": {"name": ""}}, "metadata.name"),
        ({"kind": "Service", "metadata": {"name": "x", "namespace": 3}}, "metadata.namespace"),
        ({"kind": "ConfigMap", "metadata": {"name": "x"}}, "kind"),
        ({"metadata": {"name": "x"}}, "kind"),
        (["a", "list"], ""),
        (None, ""),
    ],
)
def test_object_invalid(obj: Any, field: str) -> None:
    assert invalid(obj).field == field


def test_parse_functions_directly() -> None:
    assert isinstance(parse_service(service_obj()), Service)
    assert isinstance(parse_endpoint_slice(slice_obj()), EndpointSlice)
    assert isinstance(parse_node(node_obj()), Node)


def test_invalid_object_is_a_value_error() -> None:
    assert issubclass(InvalidObject, ValueError)


def test_slice_trigger_time_rfc3339_nano() -> None:
    """The EndpointSlice controller writes the annotation with time.RFC3339Nano."""
    obj = slice_obj()
    obj["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T12:00:00.123456789Z"
    }
    expected = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC).timestamp()
    assert parsed_slice(obj).trigger_time == expected


@pytest.mark.parametrize("zone", ["UTC0", "EST5EDT", "JST-9"])
def test_slice_trigger_time_without_offset_does_not_depend_on_the_host(
    zone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timestamp without an offset (YAML gives naive datetimes too) is read as UTC, not as
    the host's local time: the pure core gives the same answer everywhere."""
    import time

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        expected = datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
        for value in ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12)):
            obj = slice_obj()
            obj["metadata"]["annotations"] = {
                "endpoints.kubernetes.io/last-change-trigger-time": value
            }
            assert parsed_slice(obj).trigger_time == expected
    finally:
        monkeypatch.undo()
        time.tzset()
