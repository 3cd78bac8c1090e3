"""The two-column tables both campaigns end with."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from botwarden.engine.checks import PROMISES


def violation_rows(violations: Counter[str]) -> Iterator[tuple[str, str]]:
    """One row per promise, zeros included: a zero is the point."""
    for key, name in PROMISES.items():
        yield f"violations: {key} {name}", f"{violations[key]:,}"


def print_table(console, title: str, rows: Iterable[tuple[str, str]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
