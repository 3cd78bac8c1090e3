"""Telling an operator: a webhook (a JSON POST) and Telegram (the Bot API's
`sendMessage`), for the events of the topics a bot's config asks for (`notify.on`).

The engine tags the events an operator may want (`Event.data["notify"]`: error,
breaker, unprotected, needs_attention, fill) in the same write as what they tell of.
The notifier takes the ones written since it last looked (by their sequence number),
and a worker task delivers them in order, off the bot's path: a slow or dead endpoint
delays nothing but its own messages (each delivery is tried up to three times, all
within `timeout`; a queue of 100 drops the oldest beyond). At the end of the process
what is queued is delivered, for five seconds (and the delivery under way) at most.
Delivery is at most once: a message queued when the process is killed is not sent by
the next one.

Neither the webhook's URL nor the Telegram token appears in a log line or an error.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import timedelta
from typing import Any

from pydantic import Field, SecretStr, field_validator

from botwarden.domain.models import Duration, Event, Topic
from botwarden.settings import Settings
from botwarden.state.records import document

log = logging.getLogger(__name__)


class WebhookSettings(Settings):
    url: SecretStr
    """Where a JSON POST goes for each notification (kept secret: hook URLs often hold a
    token). `{"bot_id", "topic", "kind", "message", "time", "seq", "data"}`."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return value


class TelegramSettings(Settings):
    token: SecretStr
    """The bot's token from @BotFather (better from the environment: `${TELEGRAM_TOKEN}`)."""
    chat_id: int | str
    """The chat to write to: a number, or `@channelname`."""
    base_url: str = Field(default="https://api.telegram.org", pattern=r"^https?://")
    """The Bot API's host (another one for a local Bot API server, or a test's)."""


class NotifySettings(Settings):
    """Telling an operator: `{webhook: {url: ...}, telegram: {token: ..., chat_id: ...},
    on: [error, breaker, unprotected, needs_attention, limit, day, fill]}`."""

    webhook: WebhookSettings | None = None
    telegram: TelegramSettings | None = None
    on: list[Topic] = Field(
        default_factory=lambda: [
            Topic.ERROR,
            Topic.BREAKER,
            Topic.UNPROTECTED,
            Topic.NEEDS_ATTENTION,
            Topic.LIMIT,
            Topic.DAY,
        ]
    )
    """What to be told of (`fill` too, for every fill)."""
    timeout: Duration = timedelta(seconds=5)
    """Each delivery (up to three tries) ends within this time."""


QUEUE_SIZE = 100
ATTEMPTS = 3
DRAIN = 5.0
"""Seconds the end of a process waits for queued messages to go."""

Message = dict[str, Any]


class Webhook:
    name = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self._url = settings.url.get_secret_value()

    def request(self, message: Message) -> urllib.request.Request:
        return _json_post(self._url, message)


class Telegram:
    name = "telegram"

    def __init__(self, settings: TelegramSettings) -> None:
        token = settings.token.get_secret_value()
        self._url = f"{settings.base_url.rstrip('/')}/bot{token}/sendMessage"
        self._chat = settings.chat_id

    def request(self, message: Message) -> urllib.request.Request:
        text = f"botwarden · {message['bot_id']} · {message['topic']}: {message['message']}"
        return _json_post(self._url, {"chat_id": self._chat, "text": text})


class Notifier:
    def __init__(self, bot_id: str, settings: NotifySettings) -> None:
        self.bot_id = bot_id
        self.settings = settings
        self.channels = [
            channel
            for channel in (
                Webhook(settings.webhook) if settings.webhook else None,
                Telegram(settings.telegram) if settings.telegram else None,
            )
            if channel is not None
        ]
        self._topics = set(settings.on)
        self._since: int | None = None
        self._queue: asyncio.Queue[Message] | None = None
        self._worker: asyncio.Task | None = None

    @classmethod
    def for_bot(cls, bot_id: str, settings: NotifySettings) -> Notifier | None:
        """A notifier, or None if the config names no channel."""
        notifier = cls(bot_id, settings)
        return notifier if notifier.channels else None

    def start_from(self, next_seq: int) -> None:
        """Events from this sequence number on are news (the older ones were told, or
        not, by an earlier process)."""
        self._since = next_seq

    def news_since(self, next_seq: int) -> int:
        """The first sequence number not looked at yet (`next_seq`, the bot's next
        event's, at the first look: what came before is not news)."""
        return self._since if self._since is not None else next_seq

    def publish(self, events: list[Event], next_seq: int) -> None:
        """Queue `events` (those written since `news_since`) whose topic was asked for;
        the next look starts at `next_seq`."""
        since = self.news_since(next_seq)
        for event in events:
            if event.seq >= since and event.data.get("notify") in self._topics:
                self._enqueue(self._message(event))
        self._since = next_seq

    def announce(self, topic: Topic, text: str) -> None:
        """Tell of something no event holds (a start that failed before the state)."""
        if topic in self._topics:
            self._enqueue(
                {
                    "bot_id": self.bot_id,
                    "topic": str(topic),
                    "kind": "status",
                    "message": text,
                    "time": None,
                    "seq": None,
                    "data": {},
                }
            )

    async def close(self, wait: float = DRAIN) -> None:
        """Deliver what is queued (for `wait` seconds at most), then stop."""
        if self._queue is None or self._worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), wait)
        except TimeoutError:
            log.warning("%s: %d notification(s) not delivered", self.bot_id, self._queue.qsize())
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
        except Exception as error:  # a bug in delivery: its kind only, never a URL
            log.error("%s: notifications failed: %s", self.bot_id, type(error).__name__)

    # -- delivery -------------------------------------------------------------------------
    def _message(self, event: Event) -> Message:
        data = {k: v for k, v in document(event)["data"].items() if k != "notify"}
        return {
            "bot_id": self.bot_id,
            "topic": str(event.data["notify"]),
            "kind": event.kind,
            "message": event.message,
            "time": event.time.isoformat(),
            "seq": event.seq,
            "data": data,
        }

    def _enqueue(self, message: Message) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(QUEUE_SIZE)
            self._worker = asyncio.create_task(self._deliver_all())
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            log.warning("%s: notifications fall behind: the oldest dropped", self.bot_id)
        self._queue.put_nowait(message)

    async def _deliver_all(self) -> None:
        assert self._queue is not None
        while True:
            message = await self._queue.get()
            try:
                for channel in self.channels:
                    await asyncio.to_thread(self._deliver, channel, message)
            except Exception as error:  # never the end of every later notification
                log.error("%s: a notification failed: %s", self.bot_id, type(error).__name__)
            finally:
                self._queue.task_done()

    def _deliver(self, channel: Webhook | Telegram, message: Message) -> None:
        """Up to three tries, all within `timeout`; a failure is logged by its kind
        only (the URL, and so any token in it, never)."""
        deadline = time.monotonic() + self.settings.timeout.total_seconds()
        why = "no time left"
        for attempt in range(1, ATTEMPTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with urllib.request.urlopen(channel.request(message), timeout=left) as answer:
                    answer.read()
                return
            except urllib.error.HTTPError as error:
                why = f"HTTP {error.code}"
                if 400 <= error.code < 500 and error.code != 429:
                    break  # refused: asking again changes nothing
            except urllib.error.URLError as error:
                reason = error.reason
                why = reason if isinstance(reason, str) else type(reason).__name__
            except Exception as error:  # a malformed URL, a TLS failure...: its kind only
                why = type(error).__name__
            pause = min(0.5 * attempt, deadline - time.monotonic())
            if attempt < ATTEMPTS and pause > 0:
                time.sleep(pause)
        log.warning(
            "%s: %s notification (%s) not delivered: %s",
            self.bot_id,
            channel.name,
            message["topic"],
            why,
        )


def _json_post(url: str, body: Any) -> urllib.request.Request:
    return urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "botwarden"},
        method="POST",
    )
