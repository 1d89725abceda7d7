"""The seam to whoever reviews tokens: the Kubernetes API (``kpng_auth.kube``) or a fake."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from kpng_auth.decide import Review


class ReviewUnavailable(RuntimeError):
    """The reviewer could not be asked (API server down, denied, timeout)."""


class Reviewer(Protocol):
    async def review(self, token: str, audience: str) -> Review:
        """What the API server says of ``token`` for ``audience``; ReviewUnavailable."""
        ...


class FakeReviewer:
    """Reviews from a table (token -> review); unknown tokens are not authenticated;
    ``down`` makes every review unavailable."""

    def __init__(self, reviews: Mapping[str, Review] | None = None) -> None:
        self.reviews = dict(reviews or {})
        self.down = False
        self.asked = 0

    async def review(self, token: str, audience: str) -> Review:
        self.asked += 1
        if self.down:
            raise ReviewUnavailable("fake reviewer is down")
        found = self.reviews.get(token)
        if found is None:
            return Review(False, error="invalid bearer token")
        if audience not in found.audiences:
            return Review(False, error=f"token audiences {list(found.audiences)} are invalid")
        return found


def _conforms(fake: FakeReviewer) -> Reviewer:
    return fake
