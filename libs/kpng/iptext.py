"""IP addresses as text, in the form :mod:`ipaddress` writes them (kpng's wire and rule form),
at the speed of the C library.

A dual-stack view of 10,000 services holds 100,000 IPv6 endpoint addresses; the watcher parses
each, and the agent checks each as it decodes a view (and an element read back from the kernel
as text is written by it too).
:mod:`ipaddress` takes ~6 us for an IPv6 address, ``socket``'s pure C converters (no socket is
opened) ~0.4 us. The C library writes an address as :mod:`ipaddress` does (lower case, no
leading zeros, the first longest run of two or more zero groups as ``::``), except an IPv6
address that ends in an IPv4 one (``::ffff:1.2.3.4``), which it writes with dots. So the fast
path takes the C library's answer only where it has no dot, and leaves every other text
(rare: scoped, mapped or malformed addresses) to :mod:`ipaddress` itself: the answers are
:mod:`ipaddress`'s, always (tests/core/test_iptext.py holds them to it).
"""

from __future__ import annotations

import ipaddress
import socket

_INET, _INET6 = socket.AF_INET, socket.AF_INET6
_pton, _ntop = socket.inet_pton, socket.inet_ntop


def canonical_ip(text: str) -> tuple[str, int]:
    """``text`` as :mod:`ipaddress` writes the address, and its version (4 or 6); a
    ``ValueError`` if it is no IP address."""
    family, version = (_INET6, 6) if ":" in text else (_INET, 4)
    if version == 4 or "." not in text:
        try:
            if _ntop(family, _pton(family, text)) == text:
                return text, version
        except (OSError, ValueError):  # not an address; or a NUL, or not ASCII
            pass
    address = ipaddress.ip_address(text)
    return str(address), address.version


def is_canonical_ipv6(text: str) -> bool:
    """``text`` is an IPv6 address written as :mod:`ipaddress` writes it."""
    try:
        return canonical_ip(text) == (text, 6)
    except ValueError:
        return False


def ipv6_text(packed: bytes) -> str:
    """16 bytes (network order) -> the address as :mod:`ipaddress` writes it."""
    text = _ntop(_INET6, packed)
    return text if "." not in text else str(ipaddress.IPv6Address(packed))
