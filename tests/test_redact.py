"""Secrets never reach a message: URLs, DSNs and the drivers' own words about them."""

from __future__ import annotations

import pytest

from botwarden.redact import redact_url, scrub


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://bw:hunter2@db:5432/x", "postgresql://bw:***@db:5432/x"),
        ("redis://127.0.0.1:6379/0?password=hunter2", "redis://127.0.0.1:6379/0?password=***"),
        (
            "postgresql://db/x?sslmode=require&password=hunter2",
            "postgresql://db/x?sslmode=require&password=***",
        ),
        ("redis://u:hunter2@h:54x2/0", "redis://u:***@h:54x2/0"),
        ("host=db password=hunter2 dbname=x", "host=db password=*** dbname=x"),
        ("host=db password='hunter2 with spaces' dbname=x", "host=db password=*** dbname=x"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ],
)
def test_a_url_is_shown_without_its_secrets(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert "hunter2" not in redact_url(url)


def test_a_drivers_message_is_scrubbed_of_the_secret_as_written_and_decoded() -> None:
    url = "postgresql://u:hun%7Ater2@127.0.0.1:1/db"
    message = 'invalid token "hun%7Ater2" near "hunzter2"'
    assert scrub(message, url) == 'invalid token "***" near "***"'
