"""A real `botwarden serve` process on a free port, for the API and dashboard tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.process.test_run import CONFIG
from tests.state.test_crash import free_port


class Server:
    def __init__(self, home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botwarden", "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "BOTWARDEN_HOME": str(home), "COLUMNS": "250", **(env or {})},
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.1)
        self.token = (home / "api-token").read_text().strip()
        self.client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )

    def close(self) -> str:
        """Stop it; what it printed."""
        self.client.close()
        self.process.terminate()
        out, err = self.process.communicate(timeout=30)
        return out + err


def bot_config(folder: Path, extra: str = "") -> Path:
    """The golden-cross bot on a paper exchange fast enough to trade within seconds."""
    path = folder / "bot.yaml"
    path.write_text(CONFIG + extra)
    return path
