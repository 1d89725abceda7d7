from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.e2e.netns import Cluster, remove_leftovers


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("the netns tests need root and nft (run them with -m 'not netns' otherwise)")
    c = Cluster()
    try:
        c.build()
        yield c
    finally:
        c.close()
        remove_leftovers()
