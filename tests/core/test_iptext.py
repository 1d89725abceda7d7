"""IP text at the C library's speed gives ipaddress's answers, always: for every address
(random, and shaped where the C library and ipaddress could differ: zero runs, IPv4 tails,
scopes) and for texts that are no address."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from kpng.iptext import canonical_ip, ipv6_text, is_canonical_ipv6

V6 = st.integers(0, 2**128 - 1)
GROUPS = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xABC]), min_size=8, max_size=8).map(
    lambda g: int("".join(f"{x:04x}" for x in g), 16)
)  # few groups, many zeros: where the compressed run is chosen, and ::ffff:a.b.c.d tails
ODD = st.sampled_from(
    [
        "::ffff:1.2.3.4",
        "::ffff:102:304",
        "::1.2.3.4",
        "::",
        "1::",
        "fe80::1%eth0",
        "1.2.3.04",
        "01.2.3.4",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "0x1.2.3.4",
        " 1.2.3.4",
        "",
        ":",
        ":::",
        "fd00::1\x00",  # from the bus: anything
        "1.2.3.4\x00",
        "fd00::\uff11",
        "\uff11.2.3.4",
    ]
)
TEXTS = st.one_of(
    V6.map(lambda n: str(ipaddress.IPv6Address(n))),
    GROUPS.map(lambda n: str(ipaddress.IPv6Address(n))),
    V6.map(lambda n: ipaddress.IPv6Address(n).exploded),  # the same, spelt otherwise
    V6.map(lambda n: str(ipaddress.IPv6Address(n)).upper()),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.text(alphabet="0123456789abcdefABCDEF:.%x\x00\uff11 ", max_size=45),
    ODD,
)


def _reference(text: str) -> tuple[str, int] | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return str(address), address.version


@settings(max_examples=1000, deadline=None)
@given(TEXTS)
def test_canonical_texts_are_ipaddresss(text: str) -> None:
    try:
        got: tuple[str, int] | None = canonical_ip(text)
    except ValueError:
        got = None
    assert got == _reference(text)
    expected = (ref := _reference(text)) is not None and ref == (text, 6)
    assert is_canonical_ipv6(text) == expected


@settings(max_examples=1000, deadline=None)
@given(st.one_of(V6, GROUPS))
def test_packed_addresses_read_as_ipaddress_writes_them(n: int) -> None:
    address = ipaddress.IPv6Address(n)
    assert ipv6_text(address.packed) == str(address)
