"""The same bot on PostgreSQL (asyncpg): a throwaway server started for these tests."""

from __future__ import annotations

import asyncio

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import create_async_engine

from bot.installations import Installations
from bot.runtime import Bot
from bot.secret_box import SecretBox
from bot.store import TrackingState
from standins.rhombus import completes, stays
from tests.helpers import CLIP, OTHER, clip_command, finished, status_messages


async def test_follow_and_resume_on_postgres(make_settings, slack, rhombus, clock, postgres_url):
    """On PostgreSQL a clip is followed, the duplicate rule holds, and a restart resumes it."""
    rhombus.add_clip(CLIP, script=completes(10))
    rhombus.add_clip(OTHER, script=stays("UPLOADING", "Uploading video", 10))
    first = await Bot.start(make_settings(database_url=postgres_url))
    try:
        await clip_command(first, slack, f"{CLIP} {OTHER}")
        await slack.wait_for(lambda s: len(status_messages(s)) == 2)
        await clip_command(first, slack, OTHER)
        await slack.wait_for(lambda s: len(s.ephemerals) == 1)
        assert "already being followed" in slack.ephemerals[0].text
    finally:
        await first.stop()

    clock.advance(35)
    second = await Bot.start(make_settings(database_url=postgres_url))
    try:
        message = next(
            m for m in status_messages(slack) if "Ready" in m.text or CLIP in str(m.blocks)
        )
        await slack.wait_for(lambda s: len(s.thread_replies("C0GENERAL", message.ts)) == 1)
        tracking = await finished(second, message)
        assert TrackingState.FINISHED == tracking.state
        assert 2 == len(status_messages(slack))
    finally:
        await second.stop()


async def test_a_made_clip_on_postgres(make_settings, slack, clock, postgres_url):
    """On PostgreSQL `/clip new` records its request, posts once, and a restart keeps saying so."""
    first = await Bot.start(make_settings(database_url=postgres_url))
    try:
        await clip_command(first, slack, "new Lobby -10m 1m Door")
        await slack.wait_for(lambda s: len(status_messages(s)) == 1)
    finally:
        await first.stop()

    clock.advance(35)
    second = await Bot.start(make_settings(database_url=postgres_url))
    try:
        (message,) = status_messages(slack)
        await finished(second, message)
        assert "Made from Slack by <@U0ALICE>" in str(message.blocks)
        assert "Ready" in message.text
    finally:
        await second.stop()


async def test_replicas_starting_together_on_a_new_database_both_start(make_settings, postgres_url):
    """Three bots started at once on an empty database: each creates or finds every table."""
    settings = make_settings(database_url=postgres_url)
    started = await asyncio.gather(*(Bot.start(settings) for _ in range(3)), return_exceptions=True)
    try:
        assert [] == [bot for bot in started if isinstance(bot, BaseException)]
    finally:
        for bot in started:
            if isinstance(bot, Bot):
                await bot.stop()


async def test_installation_tables_are_created_once_by_replicas_starting_together(postgres_url):
    """The OAuth tables too, when several replicas open them at the same moment."""
    engines = [
        create_async_engine(postgres_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        for _ in range(3)
    ]
    box = SecretBox([SecretBox.new_key()])
    try:
        installations = [
            Installations(
                engine=engine, box=box, client_id="1.2", client_secret="s", client=AsyncWebClient()
            )
            for engine in engines
        ]
        await asyncio.gather(*(each.open() for each in installations))
        assert [] == await installations[0].teams()
    finally:
        for engine in engines:
            await engine.dispose()
