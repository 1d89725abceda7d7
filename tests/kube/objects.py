"""Kubernetes objects for the kube tests, as kubectl or the store takes them."""

from __future__ import annotations

from typing import Any

PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"


def service(
    name: str, ip: str = "", port: int = 80, labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": [{"name": "http", "port": port, "targetPort": 8080}]}
    if ip:
        body["clusterIP"] = ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {**body, **spec},
    }


def endpoint_slice(
    service_name: str,
    endpoints: list[tuple[str, str]],
    name: str = "",
    labels: dict[str, str] | None = None,
    trigger: str = "",
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name or f"{service_name}-1",
        "namespace": "default",
        "labels": {"kubernetes.io/service-name": service_name, **(labels or {})},
    }
    if trigger:
        meta["annotations"] = {"endpoints.kubernetes.io/last-change-trigger-time": trigger}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": meta,
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "nodeName": n, "conditions": {"ready": True}} for ip, n in endpoints
        ],
    }


def node(name: str, zone: str = "z1", ip: str = "192.168.0.1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }
