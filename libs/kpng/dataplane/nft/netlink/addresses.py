"""Addresses and ports to and from their network-byte-order bytes: the only importer of
``socket`` among the pure dataplane modules.

These are ``socket``'s pure C converters (``inet_aton``, ``inet_ntoa``, ``inet_pton``,
``htons``): no socket is opened. They are used on the hot path, ~150k set elements per full
sync of a 10k-service table, where :mod:`ipaddress` is ten times slower. The import-linter
contract that keeps ``socket`` out of the pure core allows this module by name.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable

from kpng.iptext import ipv6_text

inet_aton: Callable[[str], bytes] = socket.inet_aton
"""``"10.0.0.1"`` -> 4 bytes."""

inet_ntoa: Callable[[bytes], str] = socket.inet_ntoa
"""4 bytes -> ``"10.0.0.1"``."""

inet6_aton: Callable[[str], bytes] = functools.partial(socket.inet_pton, socket.AF_INET6)
"""``"fd00::1"`` -> 16 bytes."""

htons: Callable[[int], int] = socket.htons
"""A 16-bit port between host and network byte order (the same function both ways)."""


inet6_ntoa: Callable[[bytes], str] = ipv6_text
"""16 bytes -> ``"fd00::1"``, in the compressed form :mod:`ipaddress` writes (as ``nft``)."""


def aton(family: int) -> Callable[[str], bytes]:
    """The address encoder of an IP family (4 or 6)."""
    return inet_aton if family == 4 else inet6_aton
