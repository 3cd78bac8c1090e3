"""The package's public face: every name in `botwarden.__all__` imports, and importing
`botwarden` alone loads none of the heavy modules behind them."""

from __future__ import annotations

import subprocess
import sys

import botwarden


def test_every_public_name_is_there() -> None:
    for name in botwarden.__all__:
        assert getattr(botwarden, name) is not None, name
    assert set(botwarden.__all__) == {"__version__", *botwarden._EXPORTS}


def test_importing_botwarden_is_cheap() -> None:
    code = (
        "import sys, botwarden; print(sorted(m for m in ('pydantic', 'yaml') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.strip() == "[]", shown.stdout + shown.stderr


def test_the_testing_helpers_are_public_and_apart() -> None:
    """`botwarden.testing` is for a strategy's tests: its own module, documented, not
    among botwarden's names (nor imported with it)."""
    import botwarden.testing

    for name in botwarden.testing.__all__:
        assert getattr(botwarden.testing, name) is not None, name
    assert not set(botwarden.testing.__all__) & set(botwarden.__all__)
    code = "import sys, botwarden; print('botwarden.testing' in sys.modules)"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert shown.stdout.strip() == "False", shown.stdout + shown.stderr
