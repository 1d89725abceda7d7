"""kube-proxy's ``--detect-local-mode``: how the dataplane tells this node's pods' traffic. Pure.

Two rules depend on it (:mod:`kpng.dataplane.nft.skeleton`): cluster-IP traffic not from a
pod is masqueraded, and external traffic of an eTP Local service from a pod is
short-circuited. The modes:

- ``ClusterCIDR`` (the default): the source address is in ``--cluster-cidr``;
- ``BridgeInterface``: the packet came in on the pod bridge (``--pod-bridge-interface``);
- ``InterfaceNamePrefix``: it came in on an interface whose name starts with
  ``--pod-interface-name-prefix`` (the pods' host-side veths, such as Calico's ``cali``);
- ``NodeCIDR``: the source address is in the node's own pod CIDRs (its Node's
  ``spec.podCIDRs``, which the node's view carries: :attr:`kpng.model.Node.pod_cidrs`).

The interface modes come down to one pattern, as nft spells an ``iifname`` match: the bridge's
name, or the prefix followed by ``*`` (:func:`pod_interface`).
"""

from __future__ import annotations

from collections.abc import Sequence

from kpng.model import Node, of_family

CLUSTER_CIDR = "ClusterCIDR"
BRIDGE_INTERFACE = "BridgeInterface"
INTERFACE_NAME_PREFIX = "InterfaceNamePrefix"
NODE_CIDR = "NodeCIDR"
MODES = (CLUSTER_CIDR, NODE_CIDR, BRIDGE_INTERFACE, INTERFACE_NAME_PREFIX)
BRIDGE_FLAG = "--pod-bridge-interface"
PREFIX_FLAG = "--pod-interface-name-prefix"
IFNAMSIZ = 16  # the kernel's buffer for an interface name, its terminating NUL included
# besides whitespace and NUL: Linux refuses '/' and ':' in a name; quotes would end nft's
# string; nft reads '*' as a wildcard and '\' as an escape
_REFUSED = frozenset("/:\"'*\\")


def parse_mode(text: str) -> str:
    """A ``--detect-local-mode`` value, as kube-proxy spells it (empty: the default); a
    ValueError saying why one cannot be used."""
    mode = text.strip() or CLUSTER_CIDR
    if mode not in MODES:
        raise ValueError(f"{mode!r} is not a detect-local mode (use {', '.join(MODES)})")
    return mode


def interface_problem(name: str, prefix: bool = False) -> str:
    """What keeps ``name`` from being a Linux interface name (with ``prefix``: from being the
    start of one, with room left for nft's ``*``); empty when it is fine."""
    size, most = len(name.encode()), IFNAMSIZ - (2 if prefix else 1)
    if size == 0:
        return "is empty"
    if size > most:
        what = "a prefix" if prefix else "an interface name"
        return f"is {size} bytes long: {what} has at most {most}"
    bad = sorted({ch for ch in name if ch in _REFUSED or ch.isspace() or ch == "\0"})
    if bad:
        return f"has {' '.join(repr(ch) for ch in bad)}: not in an interface name"
    if not prefix and name in (".", ".."):
        return "is not an interface name"
    return ""


def interface(text: str, prefix: bool = False) -> str:
    """A ``--pod-bridge-interface`` (or, ``prefix``, ``--pod-interface-name-prefix``) value;
    a ValueError saying what is wrong with it."""
    problem = interface_problem(text, prefix)
    if problem:
        raise ValueError(f"{text!r} {problem}")
    return text


def pod_interface(mode: str, bridge: str = "", prefix: str = "") -> str:
    """The ``iifname`` pattern of a mode and its flags (``cbr0``, ``veth*``); empty for
    ``ClusterCIDR`` and ``NodeCIDR``. A ValueError naming the flag a mode needs, or one
    given without it."""
    need = {BRIDGE_INTERFACE: BRIDGE_FLAG, INTERFACE_NAME_PREFIX: PREFIX_FLAG}.get(mode)
    for flag, value in ((BRIDGE_FLAG, bridge), (PREFIX_FLAG, prefix)):
        if value and flag != need:
            raise ValueError(
                f"{flag} is used by --detect-local-mode "
                f"{BRIDGE_INTERFACE if flag == BRIDGE_FLAG else INTERFACE_NAME_PREFIX} only "
                f"(the mode is {mode})"
            )
    if need and not (bridge or prefix):
        raise ValueError(f"--detect-local-mode {mode} needs {need}")
    if mode == BRIDGE_INTERFACE:
        return interface(bridge)
    if mode == INTERFACE_NAME_PREFIX:
        return interface(prefix, prefix=True) + "*"
    return ""


def pattern_problem(pattern: str) -> str:
    """What is wrong with an ``iifname`` pattern :func:`pod_interface` could not have made."""
    name, wild = pattern.removesuffix("*"), pattern.endswith("*")
    problem = interface_problem(name, wild)
    return f"pod interface {pattern!r}: {name!r} {problem}" if problem else ""


def matches(pattern: str, iif: str) -> bool:
    """Whether nft's ``iifname "<pattern>"`` matches the input interface ``iif`` ("" for a
    packet the node sends: it matches no pattern)."""
    if pattern.endswith("*"):
        return iif.startswith(pattern[:-1])
    return iif == pattern


def pod_cidrs(
    mode: str, family: int, cluster_cidrs: Sequence[str], node: Node | None
) -> tuple[str, ...]:
    """The CIDRs of ``family`` that tell a pod's traffic by its source: in ``NodeCIDR`` mode
    those of the node's own ``spec.podCIDRs`` (none while its Node is not known or has
    none), else ``--cluster-cidr``'s (in an interface mode they are kept for the start
    check and explain, the rules match the interface)."""
    cidrs = (node.pod_cidrs if node is not None else ()) if mode == NODE_CIDR else cluster_cidrs
    return of_family(cidrs, family)
