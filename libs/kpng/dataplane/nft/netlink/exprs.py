"""The rules of kpng's chains as nf_tables expressions: a small compiler for its rule text. Pure.

A rule is read statement by statement, left to right; each statement has one of the shapes
kpng's chains use (:mod:`kpng.dataplane.nft.skeleton`, the ``pick_<N>_<S>`` chains) and gives
the expressions nft 1.0.6 generates for it (``nft --debug=netlink``), byte for byte
(``tests/nft/test_netlink_skeleton.py`` compares them with the batch nft sends). A rule with
any other statement is refused (:func:`compile_rule` returns None) and goes through ``nft``.

Registers are nft's: a statement's first value in ``reg 1``, the fields of a concatenation in
consecutive 32-bit registers (``reg 9``, ``reg 10``, ... numbered as the 128-bit ``reg 2`` when
aligned). Lookups name their set; nft also gives the id of a set made in the same batch,
which the kernel needs only for a set it cannot find by name (there is none here).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from kpng.dataplane.nft.netlink.codec import VERDICTS, name_attr, nest, nla, u32_attr

NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 1, 2
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFT_REG_VERDICT, NFT_REG_1, NFT_REG32_00 = 0, 1, 8
NFT_META_MARK, NFT_META_IIFNAME, NFT_META_L4PROTO = 3, 6, 16
IFNAMSIZ = 16
NFT_CT_STATE, NFT_CT_STATUS, NFT_CT_MARK = 0, 2, 3
NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER = 1, 2
NFT_CMP_EQ, NFT_CMP_NEQ = 0, 1
NFT_LOOKUP_F_INV = 1
NFTA_FIB_F_SADDR, NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE, RTN_LOCAL = 1, 2, 3, 2
NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10
NFT_BYTEORDER_HTON = 1
NFT_REJECT_ICMP_UNREACH, ICMP_PORT_UNREACH, ICMPV6_PORT_UNREACH = 0, 3, 4
IP_CT_NEW, IPS_DST_NAT = 0x8, 0x20

# payload fields: (base, offset, length) of each spelling, per family
FIELDS = {
    "ip saddr": (NFT_PAYLOAD_NETWORK_HEADER, 12, 4),
    "ip daddr": (NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
    "ip6 saddr": (NFT_PAYLOAD_NETWORK_HEADER, 8, 16),
    "ip6 daddr": (NFT_PAYLOAD_NETWORK_HEADER, 24, 16),
    "th dport": (NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
}
HEX = r"0x[0-9a-f]+"
NAME = r"[A-Za-z0-9_]+"
IFNAME = r"[^\s\"'*\\/:]{1,15}\*?"  # as kpng.dataplane.detectlocal allows
FIELD = r"(?:ip6? [sd]addr|meta l4proto|th dport)"
CONCAT = rf"{FIELD}(?: \. {FIELD})*"

Expr = bytes  # one NFTA_LIST_ELEM of NFTA_RULE_EXPRESSIONS


def _host(kind: int, value: int) -> bytes:
    """A value in host order, as nft writes marks and masks (``NFTA_DATA_VALUE`` nest)."""
    return nest(kind, nla(NFTA_DATA_VALUE, struct.pack("=I", value)))


def expr(name: str, data: bytes) -> Expr:
    return nest(NFTA_LIST_ELEM, name_attr(NFTA_EXPR_NAME, name) + nest(NFTA_EXPR_DATA, data))


def meta_load(key: int, reg: int = NFT_REG_1) -> Expr:
    return expr("meta", u32_attr(2, key) + u32_attr(1, reg))


def meta_set(key: int) -> Expr:
    return expr("meta", u32_attr(2, key) + u32_attr(3, NFT_REG_1))


def ct_load(key: int) -> Expr:
    return expr("ct", u32_attr(2, key) + u32_attr(1, NFT_REG_1))


def ct_set(key: int) -> Expr:
    return expr("ct", u32_attr(2, key) + u32_attr(4, NFT_REG_1))


def bitwise(mask: int, xor: int = 0, op: bool = True) -> Expr:
    """``reg 1 = (reg 1 & mask) ^ xor``. nft names the operation (``NFTA_BITWISE_OP``, bool)
    for a written ``&``/``|``, not for a flag test (``ct state new``, ``ct status dnat``)."""
    data = u32_attr(1, NFT_REG_1) + u32_attr(2, NFT_REG_1) + (u32_attr(6, 0) if op else b"")
    return expr("bitwise", data + u32_attr(3, 4) + _host(4, mask) + _host(5, xor))


def cmp(op: int, value: bytes) -> Expr:
    return expr(
        "cmp", u32_attr(1, NFT_REG_1) + u32_attr(2, op) + nest(3, nla(NFTA_DATA_VALUE, value))
    )


def payload(field: str, reg: int) -> Expr:
    base, offset, length = FIELDS[field]
    return expr(
        "payload", u32_attr(1, reg) + u32_attr(2, base) + u32_attr(3, offset) + u32_attr(4, length)
    )


def lookup(set_name: str, dreg: int | None = None, invert: bool = False) -> Expr:
    data = (
        u32_attr(2, NFT_REG_1)
        + (b"" if dreg is None else u32_attr(3, dreg))
        + name_attr(1, set_name)
    )
    return expr("lookup", data + (u32_attr(5, NFT_LOOKUP_F_INV) if invert else b""))


def verdict(text: str) -> Expr:
    word, _, chain = text.partition(" ")
    body = u32_attr(1, VERDICTS[word]) + (name_attr(2, chain) if chain else b"")
    return expr("immediate", u32_attr(1, NFT_REG_VERDICT) + nest(2, nest(NFTA_DATA_VERDICT, body)))


def immediate(value: int) -> Expr:
    data = nest(2, nla(NFTA_DATA_VALUE, struct.pack("=I", value)))
    return expr("immediate", u32_attr(1, NFT_REG_1) + data)


def fib_local(addr: str) -> list[Expr]:
    flag = NFTA_FIB_F_DADDR if addr == "daddr" else NFTA_FIB_F_SADDR
    load = expr(
        "fib", u32_attr(3, flag) + u32_attr(2, NFT_FIB_RESULT_ADDRTYPE) + u32_attr(1, NFT_REG_1)
    )
    return [load, cmp(NFT_CMP_EQ, struct.pack("=I", RTN_LOCAL))]


def masquerade_fully_random() -> Expr:
    return expr("masq", u32_attr(1, NF_NAT_RANGE_PROTO_RANDOM_FULLY))


def reject(family: str) -> Expr:
    code = ICMP_PORT_UNREACH if family == "ip" else ICMPV6_PORT_UNREACH
    return expr("reject", u32_attr(1, NFT_REJECT_ICMP_UNREACH) + nla(2, bytes((code,))))


def register(word: int) -> int:
    """nft's number for the register at 32-bit word ``word`` (128-bit numbering when aligned)."""
    return NFT_REG_1 + word // 4 if word % 4 == 0 else NFT_REG32_00 + word


def concat(spec: str, swap_proto: bool = False) -> list[Expr]:
    """The loads of ``ip daddr . meta l4proto . th dport`` into consecutive registers. In a
    lookup of an interval set with a concatenated key, nft turns the protocol to network
    order (``byteorder reg 9 = hton(reg 9, 2, 1)``): ``swap_proto``."""
    out, word = [], 0
    for field in spec.split(" . "):
        reg = register(word)
        if field == "meta l4proto":
            out.append(meta_load(NFT_META_L4PROTO, reg))
            if swap_proto:
                out.append(_hton(reg))
            size = 1
        else:
            out.append(payload(field, reg))
            size = FIELDS[field][2]
        word += (size + 3) // 4
    return out


def _hton(reg: int) -> Expr:
    data = (
        u32_attr(1, reg)
        + u32_attr(2, reg)
        + u32_attr(3, NFT_BYTEORDER_HTON)
        + u32_attr(4, 1)
        + u32_attr(5, 2)
    )
    return expr("byteorder", data)


def _masked(what: str, mask: str) -> list[Expr]:
    key = NFT_CT_MARK if what == "ct" else NFT_META_MARK
    load = ct_load(key) if what == "ct" else meta_load(key)
    return [load, bitwise(int(mask, 16))]


Compiled = Callable[[re.Match[str], "Context"], list[Expr]]


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule's statements need to know beyond their text: the family, and which sets
    are intervals with a concatenated key (their lookups swap the protocol's byte order)."""

    family: str
    swapped: frozenset[str] = frozenset()


def _flag(key: int, value: int) -> list[Expr]:
    return [ct_load(key), bitwise(value, op=False), cmp(NFT_CMP_NEQ, bytes(4))]


def _set_or(m: re.Match[str], what: str, operator: str) -> list[Expr]:
    """``ct mark set ct mark | M`` (or ``meta mark set meta mark & M``)."""
    value = int(m["value"], 16)
    mask, xor = (~value & 0xFFFFFFFF, value) if operator == "|" else (value, 0)
    if what == "ct":
        return [ct_load(NFT_CT_MARK), bitwise(mask, xor), ct_set(NFT_CT_MARK)]
    return [meta_load(NFT_META_MARK), bitwise(mask, xor), meta_set(NFT_META_MARK)]


def iifname(pattern: str, negated: bool) -> list[Expr]:
    """``iifname "cbr0"``: the name NUL-padded to ``IFNAMSIZ``; ``iifname "veth*"``: the
    prefix's bytes alone (``cmp`` compares as many bytes as its value has)."""
    name = pattern.encode()
    value = name[:-1] if name.endswith(b"*") else name.ljust(IFNAMSIZ, b"\0")
    return [meta_load(NFT_META_IIFNAME), cmp(NFT_CMP_NEQ if negated else NFT_CMP_EQ, value)]


def _match(m: re.Match[str], c: Context) -> list[Expr]:
    name = m["set"]
    return [*concat(m["key"], name in c.swapped), lookup(name, invert=bool(m["neg"]))]


STATEMENTS: tuple[tuple[re.Pattern[str], Compiled], ...] = tuple(
    (re.compile(pattern), compiled)
    for pattern, compiled in (
        (
            rf"(?P<what>ct|meta) mark & (?P<mask>{HEX}) != 0x0",
            lambda m, c: [*_masked(m["what"], m["mask"]), cmp(NFT_CMP_NEQ, bytes(4))],
        ),
        ("ct state new", lambda m, c: _flag(NFT_CT_STATE, IP_CT_NEW)),
        (
            rf'iifname (?P<neg>!= )?"(?P<name>{IFNAME})"',
            lambda m, c: iifname(m["name"], bool(m["neg"])),
        ),
        ("ct status dnat", lambda m, c: _flag(NFT_CT_STATUS, IPS_DST_NAT)),
        (r"fib (?P<addr>[sd]addr) type local", lambda m, c: fib_local(m["addr"])),
        (
            rf"ct mark & (?P<mask>{HEX}) vmap @(?P<set>{NAME})",
            lambda m, c: [*_masked("ct", m["mask"]), lookup(m["set"], NFT_REG_VERDICT)],
        ),
        (
            rf"(?P<key>{CONCAT}) vmap @(?P<set>{NAME})",
            lambda m, c: [*concat(m["key"]), lookup(m["set"], NFT_REG_VERDICT)],
        ),
        (
            rf"ct mark set ct mark & (?P<mask>{HEX}) map @(?P<set>{NAME})",
            lambda m, c: [
                *_masked("ct", m["mask"]),
                lookup(m["set"], NFT_REG_1),
                ct_set(NFT_CT_MARK),
            ],
        ),
        (
            rf"ct mark set (?P<key>{CONCAT}) map @(?P<set>{NAME})",
            lambda m, c: [*concat(m["key"]), lookup(m["set"], NFT_REG_1), ct_set(NFT_CT_MARK)],
        ),
        ("ct mark set 0x0", lambda m, c: [immediate(0), ct_set(NFT_CT_MARK)]),
        (
            rf"ct mark set ct mark \| (?P<value>{HEX})",
            lambda m, c: _set_or(m, "ct", "|"),
        ),
        (
            rf"meta mark set meta mark (?P<op>[|&]) (?P<value>{HEX})",
            lambda m, c: _set_or(m, "meta", m["op"]),
        ),
        (rf"(?P<key>{CONCAT}) (?P<neg>!= )?@(?P<set>{NAME})", _match),
        ("masquerade fully-random", lambda m, c: [masquerade_fully_random()]),
        (rf"(?:jump|goto) {NAME}|drop|accept|return", lambda m, c: [verdict(m[0])]),
        ("reject", lambda m, c: [reject(c.family)]),
    )
)


def compile_rule(rule: str, c: Context) -> bytes | None:
    """The ``NFTA_RULE_EXPRESSIONS`` payload of a rule, or None if a statement has a shape
    this module does not know."""
    return _compile(rule, c.family, c.swapped)


@lru_cache(maxsize=1024)
def _compile(rule: str, family: str, swapped: frozenset[str]) -> bytes | None:
    c = Context(family, swapped)
    out: list[Expr] = []
    at = 0
    while at < len(rule):
        for pattern, compiled in STATEMENTS:
            m = pattern.match(rule, at)
            if m is not None and (m.end() == len(rule) or rule[m.end()] == " "):
                out += compiled(m, c)
                at = m.end() + 1
                break
        else:
            return None
    return b"".join(out)
