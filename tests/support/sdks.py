"""The venues' SDKs: a test that needs one is skipped without it on a developer's
machine, and fails under CI (`CI=true`), where every SDK is installed and nothing may
pass by being skipped."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, extra: str) -> ModuleType:
    """`module`, imported; `extra`: the botwarden extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        how = f"pip install 'botwarden[{extra}]'"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{module} is required under CI=true: {how}")
        pytest.skip(f"needs {module}: {how}")
