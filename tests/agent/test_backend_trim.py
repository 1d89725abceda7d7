"""After a full sync the nftables backend gives the C heap's free pages back."""

from __future__ import annotations

import platform

import pytest

from kpng.bus.consumer import Applied
from kpng.dataplane.nft.fake import FakeNftables
from kpng.diff import SetService
from kpng.model import Service, ServicePort, ServiceType, TransportProtocol
from kpng_agent.backends import nftables
from kpng_agent.backends.nftables import NftablesBackend, Settings
from kpng_agent.backends.trim import trim
from tests.objects import view

WEB = Service(
    "default",
    "web",
    ServiceType.CLUSTER_IP,
    ("10.96.0.1",),
    (ServicePort("http", TransportProtocol.TCP, 80, 8080),),
)


def test_trim_returns_the_pages_where_the_c_library_can() -> None:
    assert trim() == (platform.libc_ver()[0] == "glibc")


async def test_a_full_sync_trims_and_a_change_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(nftables, "trim", lambda: calls.append(1) or True)
    backend = NftablesBackend(Settings("node-a", families=(4,)), FakeNftables(), list)
    v = view((WEB, []))
    await backend.program(Applied("snapshot", "e1", 1, v, ()), full=True)
    assert calls == [1]
    await backend.program(Applied("delta", "e1", 2, v, (SetService(WEB),)), full=False)
    assert calls == [1]
