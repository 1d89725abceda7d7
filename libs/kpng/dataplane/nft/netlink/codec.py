"""nf_tables set elements as netlink bytes, packed with ``struct``: the hot path of updates.

Pure: elements in, bytes out (and back, for dumps). The layouts follow what ``nft`` writes:
a concatenated key is a run of 4-byte registers (an ``ipv4_addr`` is 4 bytes, an
``inet_service`` 2 bytes in network order padded to 4, an ``inet_proto`` 1 byte padded to 4,
a ``mark`` or ``integer`` 4 bytes in host order); a single-field key is not padded. Verdicts
are a nested ``NFTA_DATA_VERDICT`` (code, chain). Comments are the ``NFTNL_UDATA_SET_ELEM_
COMMENT`` TLV in ``NFTA_SET_ELEM_USERDATA``, NUL-terminated as nft writes them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from kpng.dataplane.nft.netlink import addresses
from kpng.dataplane.nft.objects import Element, Key, NftError, Set

NLA_F_NESTED = 0x8000
NFTA_LIST_ELEM = 1
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA, NFTA_SET_ELEM_USERDATA = 1, 2, 6
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
VERDICTS = {"accept": 1, "drop": 0, "continue": -1, "return": -5, "jump": -3, "goto": -4}
VERDICT_NAMES = {code: name for name, code in VERDICTS.items()}
PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58}
PROTO_NAMES = {n: name for name, n in PROTOS.items()}

# spellings of a field, in kpng's Set types (``typeof`` expressions too) and in nft's JSON
FIELD_TYPES = {
    "ipv4_addr": "ipv4_addr",
    "ip daddr": "ipv4_addr",
    "ip saddr": "ipv4_addr",
    "ipv6_addr": "ipv6_addr",
    "ip6 daddr": "ipv6_addr",
    "ip6 saddr": "ipv6_addr",
    "inet_proto": "inet_proto",
    "meta l4proto": "inet_proto",
    "inet_service": "inet_service",
    "tcp dport": "inet_service",
    "th dport": "inet_service",
    "mark": "mark",
    "meta mark": "mark",
    "integer": "integer",
    "numgen random mod 1": "integer",
}


def nla(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n & 3)


def nest(kind: int, payload: bytes) -> bytes:
    return nla(kind | NLA_F_NESTED, payload)


def u32_attr(kind: int, value: int) -> bytes:
    """A 32-bit attribute in network order (a flag set, a handle, a register number)."""
    return nla(kind, struct.pack(">I", value & 0xFFFFFFFF))


def name_attr(kind: int, text: str) -> bytes:
    """A NUL-terminated string attribute (a table's, set's, chain's or expression's name)."""
    return nla(kind, text.encode() + b"\0")


Codec = tuple[Callable[[str], bytes], Callable[[bytes], str], int]


def _int_codec(fmt: str) -> Codec:
    pack, unpack = struct.Struct(fmt).pack, struct.Struct(fmt).unpack
    return lambda t: pack(int(t, 0)), lambda b: str(unpack(b)[0]), struct.calcsize(fmt)


def _field_codec(name: str, concat: bool) -> Codec:
    """(encode, decode, size in the key) of one field."""
    if name == "ipv4_addr":
        return addresses.inet_aton, addresses.inet_ntoa, 4
    if name == "ipv6_addr":
        return addresses.inet6_aton, addresses.inet6_ntoa, 16
    if name in ("mark", "integer"):
        return _int_codec("=I")
    if name == "inet_service":
        return _int_codec(">H2x" if concat else ">H")
    if name == "inet_proto":
        fmt = "B3x" if concat else "B"
        return (
            lambda t: struct.pack(fmt, PROTOS[t]),
            lambda b: PROTO_NAMES[b[0]],
            struct.calcsize(fmt),
        )
    raise NftError(f"no netlink encoding for {name!r}")


Conv = tuple[str, Callable[[str], object], Callable[[object], str]]


def _conv(name: str, concat: bool) -> Conv:
    """(struct code, token -> value, value -> token) of one field, native byte order."""
    if name == "ipv4_addr":
        return "4s", addresses.inet_aton, addresses.inet_ntoa  # type: ignore[return-value]
    if name == "ipv6_addr":
        return "16s", addresses.inet6_aton, addresses.inet6_ntoa  # type: ignore[return-value]
    if name in ("mark", "integer"):
        return "I", int, str
    proto_name: Callable[[object], str] = PROTO_NAMES.__getitem__  # type: ignore[assignment]
    if name == "inet_service":
        htons = addresses.htons
        return ("H2x" if concat else "H"), lambda t: htons(int(t)), lambda v: str(htons(int(v)))
    if name == "inet_proto":
        return ("B3x" if concat else "B"), PROTOS.__getitem__, proto_name
    raise NftError(f"no netlink encoding for {name!r}")


class Fields:
    """The encoding of a key or of a map's data: fixed-size fields, concatenated."""

    __slots__ = ("bare", "codecs", "convs", "fmt", "names", "prefix", "size")

    def __init__(self, names: tuple[str, ...], kind: int) -> None:
        self.names = names
        self.codecs = tuple(_field_codec(n, len(names) > 1) for n in names)
        self.convs = tuple(_conv(n, len(names) > 1) for n in names)
        self.size = sum(c[2] for c in self.codecs)
        self.fmt = "".join(c[0] for c in self.convs) + "x" * (-self.size & 3)
        # the nest (key or data) and its NFTA_DATA_VALUE header: constant for a fixed size
        self.prefix = nest(kind, nla(NFTA_DATA_VALUE, b"\0" * self.size))[:8]
        self.bare = nla(kind, nla(NFTA_DATA_VALUE, b"\0" * self.size))[:8]  # as dumps say it

    def encode(self, tokens: Key) -> bytes:
        """The whole attribute: nest, value header, value, padding."""
        codecs = self.codecs
        if len(tokens) != len(codecs):
            raise NftError(f"{' . '.join(tokens)} does not fit {' . '.join(self.names)}")
        if len(codecs) == 1:
            raw = codecs[0][0](tokens[0])
        else:
            raw = b"".join([c[0](t) for c, t in zip(codecs, tokens, strict=True)])
        return self.prefix + raw + b"\0" * (-self.size & 3)

    def decode(self, raw: bytes) -> Key:
        out, at = [], 0
        for _, dec, size in self.codecs:
            out.append(dec(raw[at : at + size]))
            at += size
        return tuple(out)


def _fields(spec: str, kind: int) -> Fields:
    spec = spec.removeprefix("typeof ")
    try:
        return Fields(tuple(FIELD_TYPES[p.strip()] for p in spec.split(" . ")), kind)
    except KeyError as e:
        raise NftError(f"no netlink encoding for {spec!r}") from e


class Layout:
    """How the elements of one set are encoded; :func:`layout` makes one from a set.

    Elements without a verdict or a comment (the bulk: endpoints, service IPs) are packed and
    unpacked with one ``struct`` for the whole attribute; the rest attribute by attribute."""

    __slots__ = ("data", "key", "name", "verdict", "whole", "whole_key")

    def __init__(self, name: str, key: Fields, data: Fields | None, verdict: bool) -> None:
        self.name, self.key, self.data, self.verdict = name, key, data, verdict
        self.whole_key = struct.Struct("=HH8s" + key.fmt)
        self.whole = self.whole_key
        if data is not None:
            self.whole = struct.Struct("=HH8s" + key.fmt + "8s" + data.fmt)

    def encode(self, e: Element, full: bool = True) -> bytes:
        """An element as an ``NFTA_LIST_ELEM``; ``full=False`` for a delete (key only)."""
        plain = not e.comment and not self.verdict and len(e.key) == len(self.key.convs)
        if plain and (not full or (e.value is None) == (self.data is None)):
            value = e.value if full else None
            try:
                return self._pack(e.key, value)
            except (KeyError, ValueError, OSError, struct.error, TypeError):
                pass  # the generic path says what is wrong
        return self._encode(e, full)

    def _pack(self, key: Key, value: Key | None) -> bytes:
        kv = [c[1](t) for c, t in zip(self.key.convs, key, strict=True)]
        if value is None:
            st = self.whole_key
            return st.pack(st.size, 0x8001, self.key.prefix, *kv)
        if self.data is None or len(value) != len(self.data.convs):
            raise ValueError("no data")
        dv = [c[1](t) for c, t in zip(self.data.convs, value, strict=True)]
        st = self.whole
        return st.pack(st.size, 0x8001, self.key.prefix, *kv, self.data.prefix, *dv)

    def unpack(self, buf: bytes, start: int, end: int) -> Element | None:
        """The element at ``buf[start-4:end]`` if it has the plain layout, else None."""
        st = self.whole if self.data is not None else self.whole_key
        if end - start + 4 != st.size or self.verdict:
            return None
        vals = st.unpack_from(buf, start - 4)
        nk = len(self.key.convs)
        if vals[2] != self.key.bare and vals[2] != self.key.prefix:
            return None
        key = tuple([c[2](v) for c, v in zip(self.key.convs, vals[3 : 3 + nk], strict=True)])
        if self.data is None:
            return Element(self.name, key)
        if vals[3 + nk] != self.data.bare and vals[3 + nk] != self.data.prefix:
            return None
        data = vals[4 + nk :]
        value = tuple([c[2](v) for c, v in zip(self.data.convs, data, strict=True)])
        return Element(self.name, key, value)

    def _encode(self, e: Element, full: bool) -> bytes:
        body = self.key.encode(e.key)
        if full:
            if (e.value is None) == (self.verdict or self.data is not None):
                raise NftError(f"element {e.text} does not fit {self.name}")
            if self.verdict:
                body += verdict_attr(e.value[0] if e.value else "")
            elif self.data is not None and e.value is not None:
                body += self.data.encode(e.value)
            if e.comment:
                body += comment_attr(e.comment)
        return struct.pack("=HH", 4 + len(body), NLA_F_NESTED | NFTA_LIST_ELEM) + body


def layout(s: Set) -> Layout | None:
    """The netlink layout of a set's elements, or None for sets left to ``nft`` (intervals,
    whose elements are ranges, and dynamic sets, which the kernel fills)."""
    if {"interval", "dynamic"} & set(s.flags) or s.timeout:
        return None
    try:
        key = _fields(s.type, NFTA_SET_ELEM_KEY)
        if s.data == "verdict":
            return Layout(s.name, key, None, True)
        data = _fields(s.data, NFTA_SET_ELEM_DATA) if s.data else None
    except NftError:
        return None
    return Layout(s.name, key, data, False)


_VERDICTS: dict[str, bytes] = {}


def verdict_attr(text: str) -> bytes:
    """``goto x``/``jump x``/``return``/``drop``/``accept`` as ``NFTA_SET_ELEM_DATA``."""
    out = _VERDICTS.get(text)
    if out is None:
        word, _, chain = text.partition(" ")
        if word not in VERDICTS or bool(chain) != (word in ("jump", "goto")):
            raise NftError(f"bad verdict {text!r}")
        inner = nla(NFTA_VERDICT_CODE, struct.pack(">i", VERDICTS[word]))
        if chain:
            inner += nla(NFTA_VERDICT_CHAIN, chain.encode() + b"\0")
        out = nest(NFTA_SET_ELEM_DATA, nest(NFTA_DATA_VERDICT, inner))
        if len(_VERDICTS) < 4096:
            _VERDICTS[text] = out
    return out


def comment_attr(comment: str) -> bytes:
    raw = comment.encode() + b"\0"
    if len(raw) > 255:
        raise NftError(f"comment too long: {comment!r}")
    return nla(NFTA_SET_ELEM_USERDATA, bytes((0, len(raw))) + raw)


def attrs(buf: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of the attributes in ``buf[start:end]``."""
    unpack = struct.Struct("=HH").unpack_from
    while start + 4 <= end:
        n, kind = unpack(buf, start)
        if n < 4:
            return
        yield kind & 0x3FFF, start + 4, start + n
        start += (n + 3) & ~3


def decode_element(lay: Layout, buf: bytes, start: int, end: int) -> Element:
    """One ``NFTA_LIST_ELEM`` payload of a dump."""
    plain = lay.unpack(buf, start, end)
    if plain is not None:
        return plain
    key: Key = ()
    value: Key | None = None
    comment = ""
    for kind, a, b in attrs(buf, start, end):
        if kind == NFTA_SET_ELEM_KEY:
            key = lay.key.decode(_value(buf, a, b))
        elif kind == NFTA_SET_ELEM_DATA:
            value = _verdict(buf, a, b) if lay.verdict else _data(lay, buf, a, b)
        elif kind == NFTA_SET_ELEM_USERDATA:
            comment = udata_comment(buf, a, b)
    return Element(lay.name, key, value, comment)


def _value(buf: bytes, a: int, b: int) -> bytes:
    for kind, x, y in attrs(buf, a, b):
        if kind == NFTA_DATA_VALUE:
            return buf[x:y]
    raise NftError("element without a value")


def _data(lay: Layout, buf: bytes, a: int, b: int) -> Key:
    if lay.data is None:
        raise NftError(f"data in set {lay.name}")
    return lay.data.decode(_value(buf, a, b))


def _verdict(buf: bytes, a: int, b: int) -> Key:
    code, chain = 0, ""
    for kind, x, y in attrs(buf, a, b):
        if kind == NFTA_DATA_VERDICT:
            for k2, p, q in attrs(buf, x, y):
                if k2 == NFTA_VERDICT_CODE:
                    code = struct.unpack_from(">i", buf, p)[0]
                elif k2 == NFTA_VERDICT_CHAIN:
                    chain = buf[p:q].rstrip(b"\0").decode()
    name = VERDICT_NAMES.get(code, str(code))
    return (f"{name} {chain}" if chain else name,)


def udata_comment(buf: bytes, a: int, b: int) -> str:
    """The comment in an ``NFTA_SET_ELEM_USERDATA`` payload ``buf[a:b]`` ("" if none)."""
    while a + 2 <= b:
        kind, n = buf[a], buf[a + 1]
        if kind == 0:
            return buf[a + 2 : a + 2 + n].rstrip(b"\0").decode()
        a += 2 + n
    return ""
