"""A database the bot cannot use at start: exit status 2 and one line naming it and the reason."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from bot.store import Store
from tests.helpers import BOT_TOKEN, RHOMBUS_KEY, SIGNING_SECRET, base_env
from tests.processes import BotProcesses

if TYPE_CHECKING:
    from pathlib import Path

    from standins.rhombus import RhombusSimulator
    from standins.slack import SlackSimulator

# SQLite waits out a lock for its busy timeout (5 s) before it gives up; leave room for that.
EXIT_TIMEOUT = 30.0


@pytest.mark.slow
def test_locked_database_is_one_clear_line(tmp_path: Path) -> None:
    """A database another process holds an exclusive lock on ends the bot with one line."""
    path = tmp_path / "bot.db"
    asyncio.run(create_database(path))
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        status, stderr = run_to_exit(f"sqlite:///{path}", tmp_path)
    finally:
        holder.close()

    assert_one_clear_line(status, stderr, path)
    assert "database is locked" in stderr


def test_read_only_database_is_one_clear_line(tmp_path: Path) -> None:
    """A database the bot may read but not write ends the bot with one line.

    chmod 0o444 stops an ordinary user from writing, but not root (CAP_DAC_OVERRIDE), as in
    many containers and CI runners. When the test finds it can still write the file, it asks
    SQLite itself to open the file read-only instead: `sqlite:///file:<path>?mode=ro&uri=true`.
    """
    path = tmp_path / "bot.db"
    asyncio.run(create_database(path))
    path.chmod(0o444)
    url = f"sqlite:///{path}" if not writable(path) else f"sqlite:///file:{path}?mode=ro&uri=true"

    status, stderr = run_to_exit(url, tmp_path)

    assert_one_clear_line(status, stderr, path)
    assert "readonly database" in stderr


async def create_database(path: Path) -> None:
    """A database the bot has used before: its table created, in WAL mode."""
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.open()
    await store.close()


def writable(path: Path) -> bool:
    """Whether this process can open the file for writing, whatever its mode says."""
    try:
        with path.open("r+b"):
            return True
    except PermissionError:
        return False


def run_to_exit(database_url: str, cwd: Path) -> tuple[int, str]:
    """Run `python -m bot` with that database until it exits; its exit status and stderr."""
    env = {
        **base_env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        # Never reached: the bot opens its database before it talks to anyone.
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "RHOMBUS_API_KEY": RHOMBUS_KEY,
        "RHOMBUS_API_URL": "http://127.0.0.1:9",
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT,
        check=False,
    )
    return done.returncode, done.stderr


def assert_one_clear_line(status: int, stderr: str, path: Path) -> None:
    """Exit status 2 and a single line naming the database file, without a traceback."""
    assert 2 == status, stderr
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("cannot open the database "), line
    assert str(path) in line


def test_malformed_database_url_is_one_clear_line(tmp_path: Path) -> None:
    """A DATABASE_URL whose driver arguments cannot be read ends the bot with one line."""
    path = tmp_path / "bot.db"

    status, stderr = run_to_exit(f"sqlite:///{path}?timeout=soon", tmp_path)

    assert 2 == status, stderr
    assert "Traceback" not in stderr
    (line,) = stderr.strip().splitlines()
    assert str(path) in line


@pytest.mark.slow
async def test_a_second_bot_on_the_same_sqlite_file_refuses_to_start(
    tmp_path: Path, slack: SlackSimulator, rhombus: RhombusSimulator
) -> None:
    """A second bot on a SQLite file in use exits with one line; once the first stops, it starts."""
    path = tmp_path / "bot.db"
    env = {
        **base_env(),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "RHOMBUS_API_KEY": RHOMBUS_KEY,
        "RHOMBUS_API_URL": rhombus.url,
        "DATABASE_URL": f"sqlite:///{path}",
        "HOST": "127.0.0.1",
    }
    bots = BotProcesses(env, tmp_path)
    try:
        first = await bots.start()

        status, stderr = await asyncio.to_thread(run_to_exit, f"sqlite:///{path}", tmp_path)

        assert_one_clear_line(status, stderr, path)
        assert f"another bot process (pid {first.process.pid}) is running on it" in stderr
        assert "PostgreSQL" in stderr
        first.process.send_signal(signal.SIGTERM)
        assert 0 == await bots.exit_status(first)
        await bots.start()  # the lock went with the first process
    finally:
        await bots.close()
