"""An emulator started the way an operator starts it: `botwarden venue serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.state.test_crash import free_port


@contextmanager
def served_from_the_cli(
    api: str, cwd: Path, key: str, secret: str, faults: str = ""
) -> Iterator[str]:
    """Run `botwarden venue serve --api API [--faults FAULTS]` until the block ends;
    yields its URL, and checks afterwards that it stopped cleanly on SIGTERM and said
    where it served."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "botwarden", "venue", "serve", "--api", api,
         "--port", str(port), "--key", key, "--secret", secret, "--faults", faults],
        cwd=cwd,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:  # it refused to start: say why
                    raise AssertionError(server.stderr.read().decode()) from None
                assert time.monotonic() < deadline, "the emulator did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=20)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status says why.
    assert server.returncode in (0, -signal.SIGTERM), stderr.decode()
    assert "Traceback" not in stderr.decode()
    assert (cwd / "state" / f"emulator-{api}.db").exists()
    assert f"{api} emulator on http://127.0.0.1" in stderr.decode()
