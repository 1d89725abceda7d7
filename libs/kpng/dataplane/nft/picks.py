"""The ``pick_<N>_<S>`` chains, made on demand: a target brings its (N, S). Pure.

A target with N endpoints in shard S DNATs through ``pick_<N>_<S>``; without affinity and
with 1..15 endpoints it reaches that chain through its ``pick_static`` element (the count
travels in the register). Only the shapes that targets use exist: 100 services of 10
endpoints need at most 16 chains, where the skeleton used to hold 512 (and 240
``pick_static`` elements), most of a small cluster's full sync.

Each target's rendering carries its shape's objects (the chain, its digest, its
``pick_static`` element), so the planner counts their references like any shared object.
A shape is made when a first target needs it: that change adds a ``goto`` element, which
makes the kernel validate the table's verdict maps (see docs/dataplane.md). So that a
target crossing back and forth between two endpoint counts does not make and remove a
chain each time, a shape no target uses any more is kept until the next full sync
(:func:`sticky`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from kpng.dataplane.nft.objects import Chain
from kpng.dataplane.nft.packed import Planned, element_comment, packer
from kpng.dataplane.nft.skeleton import Config, pick_chain, pick_static
from kpng.dataplane.nft.transaction import digest_element

PREFIX = "pick_"


@functools.lru_cache(maxsize=4096)
def pick_objects(c: Config, n: int, i: int, static: bool) -> tuple[Planned, ...]:
    """The chain of shape (``n``, ``i``) and its digest, packed; with its ``pick_static``
    element when ``static`` (the target reaches it by its endpoint count)."""
    chain = pick_chain(c, n, i)
    objs: list[Planned] = [chain, digest_element(chain)]
    if static:
        objs.append(pick_static(n, i))
    return packer(c).pack_all(objs)


def is_pick(c: Config, o: Planned) -> bool:
    """Whether ``o`` is one of a shape's objects (see :func:`pick_objects`)."""
    if type(o) is Chain:
        return o.name.startswith(PREFIX)
    if type(o) is bytes:
        pk = packer(c)
        if o[0] == pk.index["pick_static"]:
            return True
        return o[0] == pk.index["chain_digests"] and element_comment(o, 1).startswith(PREFIX)
    return False


def sticky(c: Config, added: Iterable[Planned], removed: Iterable[Planned]) -> list[Planned]:
    """Of a change's removed objects, the shapes' objects to keep (see the module's
    docstring); one also added by the same change was never gone."""
    again = set(added)
    return [o for o in removed if o not in again and is_pick(c, o)]
