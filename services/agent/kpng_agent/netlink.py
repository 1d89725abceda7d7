"""The agent's netlink adapter (pyroute2): the node's own addresses, its bridges."""

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


def bridge_addresses() -> dict[str, tuple[str, ...]]:
    """Each Linux bridge of this network namespace and its addresses (``cni0``:
    ``("10.244.1.1",)``)."""
    with IPRoute() as ipr:
        bridges = {
            link["index"]: str(link.get_attr("IFLA_IFNAME"))
            for link in ipr.get_links()
            if (info := link.get_attr("IFLA_LINKINFO")) is not None
            and info.get_attr("IFLA_INFO_KIND") == "bridge"
        }
        found: dict[str, list[str]] = {name: [] for name in bridges.values()}
        for a in ipr.get_addr():
            name = bridges.get(a["index"])
            if name is not None and a.get_attr("IFA_ADDRESS"):
                found[name].append(str(a.get_attr("IFA_ADDRESS")))
    return {name: tuple(addresses) for name, addresses in found.items()}
