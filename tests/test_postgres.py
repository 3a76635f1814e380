"""The same bot on PostgreSQL (asyncpg): a throwaway server started for these tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bot.runtime import Bot
from bot.store import TrackingState
from standins.rhombus import completes, stays
from tests.helpers import CLIP, OTHER, clip_command, finished, status_messages

if TYPE_CHECKING:
    from collections.abc import Iterator


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed (Debian package: postgresql)")
    return found


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 for this module, with trust auth for user `bot`."""
    # Not under pytest's tmp_path: its parents are private to root, and the server may not be.
    base = Path(tempfile.mkdtemp(prefix="clipbot-postgres-"))
    # PostgreSQL refuses to run as root; under root, run it as the postgres user.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(base, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = base / "data"
    subprocess.run(  # noqa: S603  # fixed binaries, arguments built here
        [*as_user, _binary("initdb"), "-D", str(data), "-A", "trust", "-U", "bot", "--no-sync"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = _binary("pg_ctl")
    subprocess.run(  # noqa: S603
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-w", "-l", str(base / "log"), "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://bot@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(  # noqa: S603
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


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
