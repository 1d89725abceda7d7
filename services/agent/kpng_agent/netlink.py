"""The agent's netlink adapter (pyroute2): the node's own addresses."""

from __future__ import annotations

from pyroute2 import IPRoute


def local_addresses() -> list[str]:
    """Global-scope addresses of this network namespace, IPv4 first."""
    with IPRoute() as ipr:
        found = [
            str(a.get_attr("IFA_ADDRESS"))
            for a in ipr.get_addr()
            if a["scope"] == 0 and a.get_attr("IFA_ADDRESS")
        ]
    return sorted(found, key=lambda ip: ":" in ip)
