"""Fixtures of the state tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import FILE_BACKENDS, Backend
from tests.state.files import file_backend_at


@pytest.fixture(params=FILE_BACKENDS)
def file_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """One file backend, its state at `<tmp>/state.<backend>`."""
    return file_backend_at(request.param, tmp_path / f"state.{request.param}")
