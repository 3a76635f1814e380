"""Secrets never leave the process: not in logs, errors, /healthz or the database."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest

from standins.rhombus import Fault, completes
from tests.helpers import (
    BOT_TOKEN,
    CLIP,
    RHOMBUS_KEY,
    SIGNING_SECRET,
    clip_command,
    status_messages,
)

SECRETS = (BOT_TOKEN, RHOMBUS_KEY, SIGNING_SECRET)


@pytest.mark.slow
async def test_full_scenario_at_debug_leaks_no_secret(bot, slack, rhombus, clock, caplog):
    """A clip followed to the end through faults, logged at DEBUG, shows no secret anywhere."""
    caplog.set_level(logging.DEBUG)
    rhombus.add_clip(CLIP, script=completes(10))
    await clip_command(bot, slack, "not-a-clip")
    await clip_command(bot, slack, CLIP)
    await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    (message,) = status_messages(slack)
    rhombus.inject(Fault(kind="rate_limit", retry_after=1))
    rhombus.inject(Fault(kind="garbage"))
    slack.fail("chat.update", error="internal_error")
    clock.advance(35)
    await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1, timeout=10)
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"http://127.0.0.1:{bot.port}/healthz")).text
    await bot.stop()

    logged = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        for record in caplog.records
    )
    database = Path(bot.settings.database_url.removeprefix("sqlite:///"))
    stored = await asyncio.to_thread(_read_all, database)
    assert caplog.records
    assert stored
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in health
        assert secret.encode() not in stored
        assert secret not in repr(bot.settings)


def _read_all(database: Path) -> bytes:
    """The database file and its write-ahead log, as bytes."""
    return b"".join(path.read_bytes() for path in database.parent.glob(database.name + "*"))
