"""Shared fixtures: the Slack and Rhombus stand-ins on 127.0.0.1, and the real bot between them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from bot.config import Settings
from bot.runtime import Bot
from standins.postgres import PostgresMissingError, fresh_database, postgres_server
from standins.rhombus import ManualClock, RhombusSimulator
from standins.slack import SlackSimulator
from tests.helpers import APP_TOKEN, BOT_TOKEN, RHOMBUS_KEY, SIGNING_SECRET

# The real-process fixtures (database_url, bot_env, bots) of the tests that kill bots.
pytest_plugins = ("tests.processes",)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A throwaway PostgreSQL server, started the first time a test needs one."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresMissingError as error:  # raised only while starting it
        pytest.fail(str(error))


@pytest.fixture
async def postgres_url(postgres_server_url: str) -> str:
    """A fresh PostgreSQL database of its own for the test."""
    return await fresh_database(postgres_server_url)


@pytest.fixture
def clock() -> ManualClock:
    """The Rhombus simulator's clock: clips move only when a test advances it."""
    return ManualClock(1_000.0)


@pytest.fixture
async def rhombus(clock: ManualClock) -> AsyncIterator[RhombusSimulator]:
    """A Rhombus organisation with no clips yet, served on 127.0.0.1."""
    async with RhombusSimulator(api_key=RHOMBUS_KEY, clock=clock, epoch=1_764_000_000) as sim:
        yield sim


@pytest.fixture
async def slack() -> AsyncIterator[SlackSimulator]:
    """Slack's Web API and Socket Mode, served on 127.0.0.1."""
    async with SlackSimulator(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as sim:
        yield sim


@pytest.fixture
def make_settings(
    tmp_path: Path, rhombus: RhombusSimulator, slack: SlackSimulator
) -> Callable[..., Settings]:
    """Settings pointing the bot at the stand-ins, a SQLite file in tmp_path, fast polling."""

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack.api_url,
            "rhombus_api_key": RHOMBUS_KEY,
            "rhombus_api_url": rhombus.url,
            "rhombus_media_url": rhombus.url,
            # Following alone; tests/test_delivery.py turns the video and thumbnail on.
            "deliver_video": False,
            "deliver_thumbnail": False,
            "rhombus_timeout_seconds": 2.0,
            "database_url": f"sqlite:///{tmp_path / 'bot.db'}",
            "poll_interval_seconds": 0.1,
            "host": "127.0.0.1",
            "port": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[arg-type]

    return make


@pytest.fixture
async def bot(make_settings: Callable[..., Settings]) -> AsyncIterator[Bot]:
    """The real bot in HTTP mode: Bolt, scheduler, database."""
    running = await Bot.start(make_settings())
    try:
        yield running
    finally:
        await running.stop()
