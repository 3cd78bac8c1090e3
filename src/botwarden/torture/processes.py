"""botwarden's own command lines as real processes, for the real campaign.

Every process is forked from a warmed-up parent that has already imported botwarden,
alpaca-py, ccxt and the web server (multiprocessing's fork server, as a pre-fork server
does): each is a real process, with its own PID, files, lock and signals, but starts in
milliseconds instead of the second its imports take, which is what lets a hundred
trials fit in CI.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from botwarden.venues.emulators.apis import EmulatedApi, paper_settings
from botwarden.venues.paper.book import PaperBook

PRELOAD = [
    "botwarden.cli",
    "botwarden.process.run",
    "botwarden.venues.alpaca",
    "botwarden.venues.ccxt",
    "botwarden.venues.emulators.alpaca",
    "botwarden.venues.emulators.binance",
    "alpaca.trading.client",
    "alpaca.data.historical",
    "ccxt.async_support",
    "uvicorn",
]
_forks = multiprocessing.get_context("forkserver")
_forks.set_forkserver_preload(PRELOAD)


def _main(argv: list[str], folder: Path, env: dict[str, str], output: Path) -> None:
    """In the child: `botwarden ARGV` in `folder`, its output to `output`."""
    os.chdir(folder)
    os.environ.clear()
    os.environ.update(env)
    os.environ["BOTWARDEN_HOME"] = str(folder / "home")  # its log and records: the trial's
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.argv = ["botwarden", *argv]
    from botwarden.cli import main

    main()


_POLLING = threading.Lock()
"""multiprocessing polls every child of the process when it starts one, from whatever
thread starts it: two threads reading one child's exit status race, and the loser
reads 255. Trials run in threads, so every start and poll goes through this lock."""


class Command:
    """`botwarden ARGS` as a real process of its own, its output kept in a file."""

    def __init__(self, argv: list[str], folder: Path, env: dict[str, str]) -> None:
        self.output = folder / f"{argv[0]}-{time.monotonic_ns()}.out"
        self.process = _forks.Process(target=_main, args=(argv, folder, env, self.output))
        with _POLLING:
            self.process.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        with _POLLING:
            return self.process.is_alive()

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it died meanwhile
            os.kill(self.pid, number)

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"botwarden (pid {self.pid}) did not exit in {timeout} s")
            time.sleep(0.01)
        with _POLLING:
            return self.process.exitcode

    def wait_for(self, text: str, timeout: float) -> bool:
        """Whether the process says `text` before it exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while text not in self.said():
            if not self.alive() or time.monotonic() > deadline:
                return text in self.said()
            time.sleep(0.02)
        return True

    def said(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exchange:
    """The paper exchange behind a venue's API (`botwarden venue serve`), as its own
    process; its faults (a clock skew) the same at every start."""

    def __init__(
        self, folder: Path, api: EmulatedApi, seed: int, key: str, secret: str, faults: str = ""
    ) -> None:
        self.folder = folder
        self.api = api
        self.seed = seed
        self.faults = faults
        self.credentials = ["--key", key, "--secret", secret]
        self.book = folder / "exchange.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Command | None = None

    def start(self, speed: float) -> None:
        self.process = Command(
            ["venue", "serve", "--api", self.api.value, "--port", str(self.port),
             *self.credentials, "--book", str(self.book), "--seed", str(self.seed),
             "--speed", str(speed), "--faults", self.faults, "--access-log"],
            self.folder, dict(os.environ),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if not self.process.alive() or time.monotonic() > deadline:
                    said = self.process.said()
                    raise RuntimeError(f"the exchange did not start: {said}") from None
                time.sleep(0.01)

    @property
    def log(self) -> Path:
        """What the running exchange says, with a line for every request it served."""
        assert self.process is not None, "start() first"
        return self.process.output

    def open_book(self, readonly: bool = False) -> PaperBook:
        """The exchange's book (`readonly`: looked at while the exchange runs)."""
        from botwarden.venues.factory import paper_book
        from botwarden.venues.settings import PaperVenueSettings

        settings = PaperVenueSettings(seed=self.seed, **paper_settings(self.api))
        return paper_book(settings, self.book, readonly)

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None
