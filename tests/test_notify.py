"""Notifications delivered to a real local HTTP server standing in for a webhook and for
Telegram's Bot API: what the engine tags, in order, off the bot's path; a failing
endpoint neither stops the bot nor leaks the URL's secrets; real bot processes tell of
needing attention and of a start that failed."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from botwarden.domain.models import Event, Topic
from botwarden.notify import Notifier, NotifySettings
from botwarden.process.supervisor import StartFailed, Supervisor
from tests.conftest import whole
from tests.engine.harness import Exchange
from tests.state.test_crash import free_port
from tests.support.processes import CONFIG

TOKEN = "123456:telegram-test-token"


class Receiver:
    """A local HTTP server that keeps every POST (path, JSON body) and answers
    `status`."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.posts.append((self.path, body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def webhook(self) -> list[dict]:
        return [body for path, body in self.posts if path == "/hook"]

    def telegram(self) -> list[dict]:
        return [body for path, body in self.posts if path == f"/bot{TOKEN}/sendMessage"]

    def wait_for(self, condition, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert time.monotonic() < deadline, f"timed out; received {self.posts}"
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def settings(receiver: Receiver, *topics: str) -> dict:
    chosen = {"on": list(topics)} if topics else {}
    return {
        "webhook": {"url": f"{receiver.url}/hook"},
        "telegram": {"token": TOKEN, "chat_id": "42", "base_url": receiver.url},
        **chosen,
    }


async def test_the_engine_tells_of_fills_and_the_breaker_on_both_channels(
    tmp_path: Path, receiver: Receiver
) -> None:
    exchange = Exchange(tmp_path)
    config = settings(receiver, "fill", "breaker")
    notifier = Notifier.for_bot("golden", NotifySettings.model_validate(config))
    runner = await exchange.runner(risk={"max_consecutive_losses": 1}, notify=config)
    runner.notifications = notifier
    notifier.start_from((await whole(runner.state)).ledger.next_event_seq)
    await exchange.hours(runner, 24 * 20)
    await notifier.close()
    state = await whole(runner.state)
    tagged = [e for e in state.events.values() if e.data.get("notify") in ("fill", "breaker")]
    hooks = receiver.webhook()
    assert [h["seq"] for h in hooks] == [e.seq for e in tagged], "each, once, in order"
    assert {h["topic"] for h in hooks} == {"fill", "breaker"}
    breaker = next(h for h in hooks if h["topic"] == "breaker")
    assert breaker["bot_id"] == "golden" and "circuit breaker tripped" in breaker["message"]
    texts = [t["text"] for t in receiver.telegram()]
    assert len(texts) == len(hooks) and all(t.startswith("botwarden · golden · ") for t in texts)
    assert {t["chat_id"] for t in receiver.telegram()} == {"42"}
    await runner.state.close()
    exchange.book.close()


async def test_a_failing_endpoint_is_tried_three_times_and_named_without_its_secrets(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    notifier = Notifier("golden", NotifySettings.model_validate(settings(receiver)))
    event = Event(seq=0, time=datetime.now(UTC), kind="status", message="stopped by an error: x",
                  data={"notify": Topic.ERROR})  # fmt: skip
    notifier.start_from(0)
    with caplog.at_level(logging.WARNING, logger="botwarden"):
        notifier.publish([event], next_seq=1)
        notifier.publish([event], next_seq=1)  # nothing new: nothing more
        await notifier.close(wait=30)
    assert len(receiver.webhook()) == 3 and len(receiver.telegram()) == 3
    said = caplog.text
    assert "webhook notification (error) not delivered: HTTP 503" in said
    assert "telegram notification (error) not delivered: HTTP 503" in said
    assert TOKEN not in said and receiver.url not in said


async def test_an_unreachable_or_malformed_endpoint_leaks_nothing_and_stops_nothing(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    closed = free_port()  # nothing listens there
    config = {
        "webhook": {"url": f"http://127.0.0.1:{closed}/hook?token=hook-secret-42"},
        "telegram": {"token": TOKEN, "chat_id": 42, "base_url": f"http://127.0.0.1:{closed}"},
        "timeout": "2s",
    }
    notifier = Notifier("golden", NotifySettings.model_validate(config))
    notifier.start_from(0)
    with caplog.at_level(logging.WARNING, logger="botwarden"):
        notifier.announce(Topic.ERROR, "first")
        broken = {**config, "webhook": {"url": "http://exa mple.com/hook?token=hook-secret-42"},
                  "telegram": {**config["telegram"], "base_url": receiver.url}}  # fmt: skip
        other = Notifier("golden", NotifySettings.model_validate(broken))
        other.announce(Topic.ERROR, "second")
        await notifier.close(wait=30)
        await other.close(wait=30)
    said = caplog.text
    assert "webhook notification (error) not delivered: ConnectionRefusedError" in said
    assert "webhook notification (error) not delivered: InvalidURL" in said
    assert "hook-secret-42" not in said and TOKEN not in said and str(closed) not in said
    [told] = receiver.telegram()
    assert told["text"].endswith("error: second") and told["chat_id"] == 42


def test_real_bots_tell_of_needing_attention_and_of_a_failed_start(
    tmp_path: Path, receiver: Receiver, botwarden_home: Path
) -> None:
    notify = json.dumps(settings(receiver))
    config = tmp_path / "bot.yaml"
    config.write_text(CONFIG + f"state: {{recovery: {{mode: manual}}}}\nnotify: {notify}\n")
    supervisor = Supervisor(botwarden_home)
    supervisor.start(config)
    receiver.wait_for(lambda: receiver.webhook())
    [told] = receiver.webhook()
    assert told["topic"] == "needs_attention" and "waiting for an operator" in told["message"]
    supervisor.stop("golden_spy")

    keyed = tmp_path / "keyed.yaml"
    keyed.write_text(
        "bot_id: keyed\nsymbols: [SPY]\nvenue: {type: alpaca, stored_key: nowhere}\n"
        f"notify: {notify}\n"
    )
    with pytest.raises(StartFailed, match="no stored key named 'nowhere'"):
        supervisor.start(keyed)
    receiver.wait_for(lambda: len(receiver.webhook()) == 2)
    failed = receiver.webhook()[-1]
    assert failed["topic"] == "error" and "could not start" in failed["message"]
    assert "could not start" in receiver.telegram()[-1]["text"]
