"""Fixtures of the engine's tests: the worlds themselves are in `harness.py`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine.harness import Exchange


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[Exchange]:
    exchange = Exchange(tmp_path)
    yield exchange
    exchange.book.close()
