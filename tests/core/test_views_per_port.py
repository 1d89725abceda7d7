"""kpng.fanout.views: endpoints are selected per service port, as kube-proxy does.

kube-proxy runs ``CategorizeEndpoints`` once per ServicePortName (service, port name,
protocol) over the endpoints of the slices that list that port. The view marks each
endpoint with the service-wide selection and adds ``port_marks`` where a port's own
selection differs; these tests pin the cases where it does, and that it adds nothing
where it does not.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.fanout.views import service_view
from kpng.model import (
    Endpoint,
    EndpointPort,
    PortMarks,
    Service,
    ServicePort,
    ServiceType,
    TrafficPolicy,
    ViewEndpoint,
    endpoint_port,
)
from tests.objects import HTTP_ENDPOINT_PORT, TCP, http_port

from .strategies import NODES, endpoint_lists, services, zone_of

LOCAL = TrafficPolicy.LOCAL
METRICS = EndpointPort("metrics", TCP, 9090)
HTTP_AND_METRICS = (HTTP_ENDPOINT_PORT, METRICS)
HTTP_ONLY = (HTTP_ENDPOINT_PORT,)
READY: dict[str, Any] = {"ready": True, "serving": True, "terminating": False}
TERMINATING: dict[str, Any] = {"ready": False, "serving": True, "terminating": True}
NO_MARKS: tuple[PortMarks, ...] = ()


def web(**changes: Any) -> Service:
    """A NodePort service with ports http (80) and metrics (9090)."""
    base = Service(
        "shop",
        "web",
        ServiceType.NODE_PORT,
        ("10.96.0.10",),
        (http_port(30080), ServicePort("metrics", TCP, 9090, "metrics", 30090)),
    )
    return dataclasses.replace(base, **changes)


def ep(ip: str, node: str, ports: tuple[EndpointPort, ...], **changes: Any) -> Endpoint:
    return Endpoint(ip=ip, ports=ports, node=node, zone=zone_of(node), **changes)


def per_port(view: tuple[ViewEndpoint, ...], sp: ServicePort) -> dict[str, tuple[bool, bool]]:
    """ip -> (internal, external) for the port ``sp``, of the endpoints that list it."""
    return {e.ip: e.marks(sp.name, sp.protocol) for e in view if endpoint_port(sp, e)}


HTTP_SP, METRICS_SP = web().ports

# A rollout that drops the metrics port: the new pods are ready and list http only, the old
# ones are terminating (still serving) and list http and metrics.
ROLLOUT = (
    ep("10.244.1.5", "node-a1", HTTP_ONLY, **READY),
    ep("10.244.1.6", "node-a1", HTTP_AND_METRICS, **TERMINATING),
    ep("10.244.2.5", "node-b1", HTTP_ONLY, **READY),
    ep("10.244.2.6", "node-b1", HTTP_AND_METRICS, **TERMINATING),
)


def test_rollout_metrics_goes_to_the_old_serving_terminating_pods() -> None:
    view = service_view(web(), ROLLOUT, "node-a1", "zone-a")
    assert per_port(view, METRICS_SP) == {"10.244.1.6": (True, True), "10.244.2.6": (True, True)}
    assert per_port(view, HTTP_SP) == {
        "10.244.1.5": (True, True),
        "10.244.1.6": (False, False),
        "10.244.2.5": (True, True),
        "10.244.2.6": (False, False),
    }
    # the service-wide marks stay (what an agent without port marks programs); the old pods
    # carry metrics' own
    by_ip = {e.ip: e for e in view}
    assert by_ip["10.244.1.6"].port_marks == (PortMarks("metrics", TCP, True, True),)
    assert by_ip["10.244.1.5"].port_marks == ()


def test_local_policy_per_port() -> None:
    """Local policy takes the node's own ready endpoints of the port, else its serving-
    terminating ones: on node-a1 the only local endpoint with metrics is terminating."""
    service = web(internal_traffic_policy=LOCAL, external_traffic_policy=LOCAL)
    view = service_view(service, ROLLOUT, "node-a1", "zone-a")
    assert per_port(view, METRICS_SP) == {"10.244.1.6": (True, True), "10.244.2.6": (False, False)}
    assert per_port(view, HTTP_SP) == {
        "10.244.1.5": (True, True),
        "10.244.1.6": (False, False),
        "10.244.2.5": (False, False),
        "10.244.2.6": (False, False),
    }


def test_local_policy_per_port_with_a_ready_local_endpoint_elsewhere_only() -> None:
    """node-b1 has a ready local pod without metrics and a remote one with it: for metrics
    the node has no local endpoint (drop: every mark off), for http its ready pod."""
    endpoints = (
        ep("10.244.1.6", "node-a1", HTTP_AND_METRICS, **READY),
        ep("10.244.2.5", "node-b1", HTTP_ONLY, **READY),
    )
    view = service_view(web(external_traffic_policy=LOCAL), endpoints, "node-b1", "zone-b")
    assert per_port(view, METRICS_SP) == {"10.244.1.6": (True, False)}
    assert per_port(view, HTTP_SP) == {"10.244.1.6": (True, False), "10.244.2.5": (True, True)}


def test_topology_hints_are_judged_per_port() -> None:
    """Every ready endpoint with http is hinted, one with metrics is not: zone hints
    narrow http to zone-a on node-a1, while metrics, whose ready endpoints are not all
    hinted, goes to every one of them."""
    hinted = frozenset({"zone-a"})
    endpoints = (
        ep("10.244.1.5", "node-a1", HTTP_AND_METRICS, zone_hints=hinted),
        ep("10.244.2.5", "node-b1", HTTP_ONLY, zone_hints=frozenset({"zone-b"})),
        ep("10.244.2.6", "node-b1", (METRICS,)),
    )
    view = service_view(web(traffic_distribution="PreferClose"), endpoints, "node-a1", "zone-a")
    assert per_port(view, HTTP_SP) == {"10.244.1.5": (True, True), "10.244.2.5": (False, False)}
    assert per_port(view, METRICS_SP) == {"10.244.1.5": (True, True), "10.244.2.6": (True, True)}


def test_common_case_adds_no_port_marks() -> None:
    """Every endpoint lists the same ports: the view is the service-wide one, nothing more,
    and the endpoints share the one empty tuple."""
    endpoints = (
        ep("10.244.1.5", "node-a1", HTTP_AND_METRICS, **READY),
        ep("10.244.1.6", "node-a1", HTTP_AND_METRICS, **TERMINATING),
        ep("10.244.2.5", "node-b1", HTTP_AND_METRICS, **READY),
    )
    view = service_view(web(), endpoints, "node-a1", "zone-a")
    assert [(e.ip, e.internal, e.external) for e in view] == [
        ("10.244.1.5", True, True),
        ("10.244.1.6", False, False),
        ("10.244.2.5", True, True),
    ]
    # plain ViewEndpoints: no slot for marks (no byte more), the class's empty tuple
    assert all(type(e) is ViewEndpoint and e.port_marks is NO_MARKS for e in view)


def test_ports_differing_without_changing_any_selection_add_nothing() -> None:
    """All ready: a port listed by fewer endpoints selects those, as the service-wide
    selection restricted to them does."""
    view = service_view(web(), ROLLOUT[::2], "node-a1", "zone-a")
    assert all(e.port_marks == () for e in view)
    endpoints = (
        ep("10.244.1.5", "node-a1", HTTP_AND_METRICS, **READY),
        ep("10.244.2.5", "node-b1", HTTP_ONLY, **READY),
    )
    assert all(e.port_marks == () for e in service_view(web(), endpoints, "node-a1", "zone-a"))


def _restricted(service: Service, sp: ServicePort) -> Service:
    return dataclasses.replace(service, ports=(sp,))


@settings(max_examples=200, deadline=None)
@given(services(), endpoint_lists(), st.sampled_from([*NODES, "node-x"]))
def test_each_port_is_selected_as_kube_proxy_does(
    service: Service, endpoints: tuple[Endpoint, ...], node: str
) -> None:
    """The oracle: a port's marks are those of the service-wide selection over the port's
    own endpoints (where every endpoint lists the port, so port marks play no part)."""
    zone = zone_of(node)
    view = service_view(service, endpoints, node, zone)
    names = Counter((sp.name, sp.protocol) for sp in service.ports)
    for sp in service.ports:
        if names[(sp.name, sp.protocol)] > 1:
            continue  # the API server refuses two ports of one name (marks are by name)
        having = tuple(e for e in endpoints if endpoint_port(sp, e))
        alone = service_view(_restricted(service, sp), having, node, zone)
        assert all(e.port_marks == () for e in alone)
        own = {e.ip: e.all_marks(sp.name, sp.protocol) for e in view if endpoint_port(sp, e)}
        assert own == {e.ip: (e.internal, e.external, e.shortcut) for e in alone}, sp
    for e in view:
        names = [(m.name, m.protocol) for m in e.port_marks]
        assert len(names) == len(set(names))
        # a mark is only there when it says something else than the endpoint's own
        mine = (e.internal, e.external, e.shortcut)
        assert all((m.internal, m.external, m.shortcut) != mine for m in e.port_marks)
        # and only for a port some endpoint of the view does not list (docs/bus.md: the
        # renderer relies on it)
        for m in e.port_marks:
            sp = next(p for p in service.ports if (p.name, p.protocol) == (m.name, m.protocol))
            assert not all(endpoint_port(sp, other) for other in view), m


def test_a_marked_endpoint_answers_each_port_with_one_lookup() -> None:
    """MarkedViewEndpoint.marks reads a dict, not its marks one by one (a message may give
    an endpoint tens of thousands; the renderer asks once per port)."""
    marks = tuple(PortMarks(f"p{i}", TCP, i % 2 == 0, False) for i in range(20_000))
    e = ViewEndpoint("10.244.1.5", HTTP_ONLY, internal=False, external=True).with_port_marks(marks)
    assert e.marks("p19998", TCP) == (True, False)
    assert e.marks("p19999", TCP) == (False, False)
    assert e.marks("http", TCP) == (False, True)  # no mark: the endpoint's own
    assert e.all_marks("p19998", TCP) == (True, False, False)
    assert e == dataclasses.replace(e)  # the lookup table is no part of the value
    started = time.process_time()
    for i in range(20_000):
        e.marks(f"p{i}", TCP)
    assert time.process_time() - started < 0.5  # a scan each: ~10 s
