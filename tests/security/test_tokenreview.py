"""The API simulator's TokenReview, asked through kpng-auth's Kubernetes adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kpng_apisim import ApiSimulator
from kpng_auth.decide import NODE_NAME_EXTRA
from kpng_auth.kube import KubeReviewer, api_client
from kpng_auth.reviewer import ReviewUnavailable


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ApiSimulator]:
    async with ApiSimulator(kubeconfig_path=tmp_path / "kubeconfig") as simulator:
        yield simulator


async def test_valid_expired_wrong_audience_and_unknown_tokens(sim: ApiSimulator) -> None:
    valid = sim.tokens.issue("kube-system/kpng-agent", "node-a1")
    expired = sim.tokens.issue("kube-system/kpng-agent", "node-a1", expires_in=-1)
    other = sim.tokens.issue("kube-system/kpng-agent", "node-a1", audiences=("vault",))
    async with await api_client(str(sim.kubeconfig_path)) as api:
        reviewer = KubeReviewer(api)
        review = await reviewer.review(valid, "kpng")
        assert review.authenticated and review.audiences == ("kpng",)
        assert review.username == "system:serviceaccount:kube-system:kpng-agent"
        assert review.extra[NODE_NAME_EXTRA] == ("node-a1",)
        for token, error in (
            (expired, "expired"),
            (other, "audiences"),
            ("nobody.issued.this", "invalid bearer token"),
        ):
            refused = await reviewer.review(token, "kpng")
            assert not refused.authenticated and error in refused.error
            assert refused.username == ""
    assert sim.request_count("create", "tokenreviews") == 4


async def test_an_unreachable_api_is_review_unavailable(sim: ApiSimulator) -> None:
    async with await api_client(str(sim.kubeconfig_path)) as api:
        await sim.stop()
        with pytest.raises(ReviewUnavailable, match="TokenReview"):
            await KubeReviewer(api, timeout=2).review("x", "kpng")
