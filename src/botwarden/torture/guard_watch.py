"""While the bot's disk is full: the outage guard's promise, checked from the venue's side.

The bot cannot write its state, so an entry that filled as the disk filled cannot get
its stop written ahead: every pass then asks the venue what is held and sends a guard
stop for what no order of the bot's covers (docs/engine.md, "The loop"). The harness
trusts nothing the bot says about it: it reads the exchange's book (read-only, through
the checker, I2) and counts the bot's passes in the exchange's access log, where each
pass of a bot whose store fails begins by asking what is held. A position seen bare
must rest covered within `BOUND` of those passes; and since a bot that does nothing
asks nothing, a position bare while the bot has not asked for `SILENT_FOR` seconds (a
dozen passes' time) is a violation too. The one exception is a position the bot says
it leaves bare (too far past its stop: an operator must decide).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from botwarden.engine.checks import Violation, check_promises
from botwarden.engine.ids import ClientIds
from botwarden.state.history import WholeState
from botwarden.state.records import BotState
from botwarden.venues.paper.book import PaperBook

BOUND = 3
"""Passes of the bot's within which a position seen bare must rest covered (the guard
promises the pass that met the failure or the next)."""
SILENT_FOR = 2.0
"""Seconds a bare position may go without the bot asking what is held: about ten of its
passes of 200 ms (slower on a loaded machine, never that much slower)."""
RELOOK = 0.25
"""Seconds between looks at the book while no pass comes."""
LEFT_BARE = re.compile(r"\S+ (\S+) held without a stop, the store failing: [^\n]*nothing placed")
"""The bot's word that it leaves a position bare by policy (`engine/outage.py`)."""


class Passes:
    """The bot's passes while its store fails, counted in the exchange's access log from
    the moment this is made: `request` matches the one each pass begins with."""

    def __init__(self, log: Path, request: str) -> None:
        self.log = log
        self.request = re.compile(request)
        self._read = log.stat().st_size
        self.count = 0

    def now(self) -> int:
        with self.log.open("rb") as lines:
            lines.seek(self._read)
            new = lines.read()
        new = new[: new.rfind(b"\n") + 1]  # whole lines: the last may be half written
        self._read += len(new)
        self.count += len(self.request.findall(new.decode(errors="replace")))
        return self.count


class GuardWatch:
    """Looks at the book at each pass of the bot's (and now and then between); each
    position left bare past the bound goes in `violations`, with the checker's evidence."""

    def __init__(
        self,
        book: PaperBook,
        passes: Passes,
        state: Callable[[], BotState],
        said: Callable[[], str],
        ids: ClientIds,
    ) -> None:
        self.book = book
        self.passes = passes
        self.state = state
        self.said = said
        """What the bot has said since the disk filled."""
        self.ids = ids
        self.checks = 0
        """Looks at the book with a position held."""
        self.owed: set[str] = set()
        """Markets seen bare: a guard was owed there."""
        self.violations: list[Violation] = []
        self._bare_since: dict[str, tuple[int, float]] = {}
        """Each bare market: the passes counted, and the time, when it was seen bare."""
        self._last: tuple[int, float] | None = None
        """The passes counted at the last look, and its time."""
        self._last_pass_at = 0.0
        """When a pass of the bot's was last seen to begin."""

    def look(self, now: float) -> None:
        """Look at the book if a pass of the bot's began since the last look, or if none
        has for a while; `now` is the harness's monotonic clock, in seconds."""
        passes = self.passes.now()
        if self._last is None or passes != self._last[0]:
            self._last_pass_at = now  # (at the first look: since the watch began)
        elif now - self._last[1] < RELOOK:
            return  # nothing new since the last look
        self._last = (passes, now)
        state = self.state()
        with self.book.reading():
            held = [p.symbol for p in self.book.positions()]
            found = check_promises(WholeState.live_only(state), self.book, self.ids, {"I2"})
        self.checks += bool(held)
        bare = {s: v for v in found for s in held if v.message.startswith(f"{s}: ")}
        for symbol in set(self._bare_since) - set(bare):
            del self._bare_since[symbol]  # covered now, or closed
        left_bare = set(LEFT_BARE.findall(self.said()))
        for symbol, violation in bare.items():
            since, seen_at = self._bare_since.setdefault(symbol, (passes, now))
            self.owed.add(symbol)
            silent = now - max(seen_at, self._last_pass_at)
            # Looked at just after a pass began: that pass may have read the venue before
            # the position was there, and a pass is known to be over only once the next
            # one begins. So BOUND whole passes saw it bare when BOUND + 2 have begun.
            if passes - since >= BOUND + 2:
                why = f"through {passes - since - 2} whole passes of the bot's"
            elif silent > SILENT_FOR:
                why = f"and for {silent:.1f} s no pass of the bot's asked the venue what it holds"
            else:
                continue
            if symbol in left_bare or any(
                v.message.startswith(f"{symbol}: ") for v in self.violations
            ):
                continue
            self.violations.append(
                Violation(
                    "I2",
                    f"{violation.message} while the bot's disk was full, {why}",
                    violation.evidence,
                )
            )
