"""What many tests build alike: the http (80 -> 8080) and dns (53 -> 5353) ports, node views.

Tests build their own services and endpoints (the fields under test stay in the test); the
ports and the way a view is put together are the same everywhere, so they are written once here.
"""

from __future__ import annotations

from kpng.diff import View
from kpng.model import EndpointPort, Service, ServicePort, TransportProtocol, ViewEndpoint

TCP, UDP = TransportProtocol.TCP, TransportProtocol.UDP

HTTP_ENDPOINT_PORT = EndpointPort("http", TCP, 8080)
DNS_ENDPOINT_PORT = EndpointPort("dns", UDP, 5353)
HTTP = (HTTP_ENDPOINT_PORT,)
"""An endpoint's ports when it serves http only."""


def http_port(node_port: int = 0, target: int | str = 8080) -> ServicePort:
    """A service's port 80 named http, to the endpoints' 8080 (or a named target port)."""
    return ServicePort("http", TCP, 80, target, node_port)


def dns_port(node_port: int = 0) -> ServicePort:
    """A service's port 53/UDP named dns, to the endpoints' 5353."""
    return ServicePort("dns", UDP, 53, 5353, node_port)


def view(*pairs: tuple[Service, list[ViewEndpoint]]) -> View[ViewEndpoint]:
    """A node view of these services, each with its endpoints (none: the service has none)."""
    v: View[ViewEndpoint] = View()
    for s, eps in pairs:
        v.services[s.key] = s
        if eps:
            v.endpoints[s.key] = {e.ip: e for e in eps}
    return v
