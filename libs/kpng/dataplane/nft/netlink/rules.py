"""Chains and their rules as nf_tables netlink messages. Pure.

The ``pick_<N>_<S>`` rule (``meta l4proto P dnat F to ct mark & M . numgen random mod N map
@endpoints_S``), the one kpng writes in bulk, is encoded here directly; every other rule
through the statement compiler of :mod:`~kpng.dataplane.nft.netlink.exprs` (the skeleton's
hook and dispatch rules). A chain with a rule of any other shape is refused
(:func:`chain_messages` returns None) and goes through ``nft`` (affinity chains).

The expressions are the ones nft 1.0.6 generates for the pick rule (``nft --debug=netlink``)::

    [ meta load l4proto => reg 1 ]
    [ cmp eq reg 1 0x00000006 ]
    [ ct load mark => reg 1 ]
    [ bitwise reg 1 = ( reg 1 & 0x00ffffff ) ^ 0x00000000 ]
    [ numgen reg 9 = random mod 3 ]
    [ lookup reg 1 set endpoints_4 dreg 1 ]
    [ nat dnat ip addr_min reg 1 proto_min reg 9 ]      (ip6: proto_min reg 2)

without ``NFTA_LOOKUP_SET_ID`` (sets are found by name, also those made in the same batch).
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache

from kpng.dataplane.nft.netlink.codec import PROTOS, name_attr, nest, nla, u32_attr
from kpng.dataplane.nft.netlink.definitions import chain_head
from kpng.dataplane.nft.netlink.exprs import Context, compile_rule, expr
from kpng.dataplane.nft.objects import Chain

NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_DELRULE = 3, 6, 8
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS = 1, 2, 4
NFTA_LIST_ELEM, NFTA_EXPR_NAME, NFTA_EXPR_DATA = 1, 1, 2
NFTA_DATA_VALUE = 1
NFT_REG_1, NFT_REG_2, NFT_REG32_01 = 1, 2, 9
NFT_META_L4PROTO, NFT_CT_MARK, NFT_NG_RANDOM, NFT_NAT_DNAT = 16, 3, 1, 1
AF = {"ip": 2, "ip6": 10}

PICK_RULE = re.compile(
    r"meta l4proto (tcp|udp|sctp) dnat (ip6?) to ct mark & (0x[0-9a-f]+)"
    r" \. numgen random mod ([1-9][0-9]*) map @([A-Za-z0-9_]+)"
)

Message = tuple[int, int, bytes]
"""(nf_tables message type, netlink flags beyond ``NLM_F_REQUEST``, attributes)."""

NLM_F_CREATE, NLM_F_APPEND = 0x400, 0x800


def _value(kind: int, raw: bytes) -> bytes:
    return nest(kind, nla(NFTA_DATA_VALUE, raw))


def rule_expressions(rule: str, context: Context | None = None) -> bytes | None:
    """The ``NFTA_RULE_EXPRESSIONS`` payload of a rule kpng knows how to encode, else None.
    A pick rule's expressions are built once per distinct value and joined (a skeleton's
    1536 rules in ~3 ms, not ~80 ms); any other rule is compiled (``context``: its family
    and interval sets, see :class:`~kpng.dataplane.nft.netlink.exprs.Context`)."""
    m = PICK_RULE.fullmatch(rule)
    if m is None:
        return None if context is None else compile_rule(rule, context)
    proto, family, mask, modulus, target = m.groups()
    return b"".join(
        (
            _l4proto(proto),
            _masked_ct_mark(int(mask, 16) & 0xFFFFFFFF),
            _numgen(int(modulus)),
            _lookup(target),
            _dnat(family),
        )
    )


@lru_cache(maxsize=8)
def _l4proto(proto: str) -> bytes:
    return expr("meta", u32_attr(2, NFT_META_L4PROTO) + u32_attr(1, NFT_REG_1)) + expr(
        "cmp", u32_attr(1, NFT_REG_1) + u32_attr(2, 0) + _value(3, bytes((PROTOS[proto],)))
    )


@lru_cache(maxsize=8)
def _masked_ct_mark(mask: int) -> bytes:
    return expr("ct", u32_attr(2, NFT_CT_MARK) + u32_attr(1, NFT_REG_1)) + expr(
        "bitwise",
        u32_attr(1, NFT_REG_1)
        + u32_attr(2, NFT_REG_1)
        + u32_attr(6, 0)
        + u32_attr(3, 4)
        + _value(4, struct.pack("=I", mask))
        + _value(5, bytes(4)),
    )


@lru_cache(maxsize=256)
def _numgen(modulus: int) -> bytes:
    return expr(
        "numgen",
        u32_attr(1, NFT_REG32_01)
        + u32_attr(2, modulus)
        + u32_attr(3, NFT_NG_RANDOM)
        + u32_attr(4, 0),
    )


@lru_cache(maxsize=256)
def _lookup(target: str) -> bytes:
    return expr("lookup", u32_attr(2, NFT_REG_1) + u32_attr(3, NFT_REG_1) + name_attr(1, target))


@lru_cache(maxsize=4)
def _dnat(family: str) -> bytes:
    proto_reg = NFT_REG32_01 if family == "ip" else NFT_REG_2
    return expr(
        "nat",
        u32_attr(1, NFT_NAT_DNAT)
        + u32_attr(2, AF[family])
        + u32_attr(3, NFT_REG_1)
        + u32_attr(5, proto_reg),
    )


def encodable(chain: Chain, context: Context | None = None) -> bool:
    """A chain whose every rule this module encodes (without ``context``: pick chains only)."""
    if context is None and chain.hook is not None:
        return False
    return all(rule_expressions(r, context) is not None for r in chain.rules)


@lru_cache(maxsize=4096)
def chain_messages(
    table: str, chain: Chain, context: Context | None = None
) -> tuple[Message, ...] | None:
    """``add chain`` (with its hook), ``flush chain`` and ``add rule`` for each rule, as
    ``nft -f`` runs them (:meth:`Transaction.script`); None when the chain is not
    :func:`encodable`. Kept per chain: a skeleton's are the same on every full sync."""
    if not encodable(chain, context):
        return None
    exprs = [rule_expressions(r, context) for r in chain.rules]
    head = name_attr(NFTA_RULE_TABLE, table) + name_attr(NFTA_RULE_CHAIN, chain.name)
    out: list[Message] = [chain_head(table, chain), (NFT_MSG_DELRULE, 0, head)]
    out += [
        (NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, head + nest(NFTA_RULE_EXPRESSIONS, e))
        for e in exprs
        if e is not None
    ]
    return tuple(out)
