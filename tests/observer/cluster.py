"""The observer tests' cluster: the shape of examples/cluster.yaml (three nodes in two zones,
ClusterIP, NodePort with affinity, LoadBalancer with eTP Local and source ranges, iTP Local)
plus a service without endpoints, as Kubernetes objects."""

from __future__ import annotations

from typing import Any

from kpng.diff import View
from kpng.fanout.cluster import ClusterState
from kpng.model import ViewEndpoint
from kpng.parse import Ignored, parse_object

NODES = {"node-a1": "192.168.1.11", "node-a2": "192.168.1.12", "node-b1": "192.168.2.11"}
CLUSTER_CIDR = "10.244.0.0/16"


def node(name: str, ip: str) -> dict[str, Any]:
    """A Node; node-a1 with a pod CIDR (spec.podCIDRs), node-b1 going away (the cluster
    autoscaler's taint), the others with neither."""
    zone = "zone-a" if name.startswith("node-a") else "zone-b"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "spec": {"podCIDRs": ["10.244.1.0/24"]}
        if name == "node-a1"
        else {"taints": [{"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}
        if name == "node-b1"
        else {},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def service(
    ns: str, name: str, ip: str, ports: list[dict[str, Any]], **spec: Any
) -> dict[str, Any]:
    status = spec.pop("status", {})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name, "team": ns}},
        "spec": {"clusterIP": ip, "ports": ports, **spec},
        "status": status,
    }


def slice_(
    ns: str, svc: str, ports: list[dict[str, Any]], endpoints: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """``endpoints``: (ip, node, condition) with condition ready, terminating or unready."""
    conditions = {
        "ready": {"ready": True, "serving": True, "terminating": False},
        "terminating": {"ready": False, "serving": True, "terminating": True},
        "unready": {"ready": False, "serving": False, "terminating": False},
    }
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-1",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [
            {"addresses": [ip], "nodeName": n, "conditions": conditions[c]}
            for ip, n, c in endpoints
        ],
    }


def objects() -> list[dict[str, Any]]:
    http = [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}]
    https = [{"name": "https", "port": 443, "targetPort": 8443, "nodePort": 30443}]
    redis = [{"name": "redis", "port": 6379, "targetPort": 6379}]
    return [
        *(node(name, ip) for name, ip in NODES.items()),
        service(
            "demo",
            "web",
            "10.96.10.1",
            http,
            type="NodePort",
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 600}},
        ),
        slice_(
            "demo",
            "web",
            [{"name": "http", "port": 8080, "protocol": "TCP"}],
            [
                ("10.244.1.20", "node-a1", "ready"),
                ("10.244.3.20", "node-b1", "ready"),
                ("10.244.3.21", "node-b1", "unready"),
            ],
        ),
        service(
            "demo",
            "shop",
            "10.96.10.2",
            https,
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            healthCheckNodePort=32100,
            externalIPs=["203.0.113.10"],
            loadBalancerSourceRanges=[" 10.0.0.0/8 "],
            status={"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}},
        ),
        slice_(
            "demo",
            "shop",
            [{"name": "https", "port": 8443, "protocol": "TCP"}],
            [("10.244.1.30", "node-a1", "ready"), ("10.244.3.30", "node-b1", "terminating")],
        ),
        service("demo", "cache", "10.96.10.3", redis, internalTrafficPolicy="Local"),
        slice_(
            "demo",
            "cache",
            [{"name": "redis", "port": 6379, "protocol": "TCP"}],
            [("10.244.1.40", "node-a1", "ready"), ("10.244.3.40", "node-b1", "ready")],
        ),
        service("demo", "empty", "10.96.10.9", [{"name": "http", "port": 80, "targetPort": 8080}]),
    ]


def node_view(name: str, objs: list[dict[str, Any]] | None = None) -> View[ViewEndpoint]:
    state = ClusterState()
    parsed = [parse_object(o) for o in (objs if objs is not None else objects())]
    state.replace(p for p in parsed if not isinstance(p, Ignored))
    return state.node_view(name)
