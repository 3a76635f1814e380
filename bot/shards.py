"""Replicas on PostgreSQL: workspaces in 64 shards, each held by one replica's advisory lock.

Each replica keeps one dedicated connection (never pooled: a pool's reset runs
`pg_advisory_unlock_all()`, and PgBouncer in transaction mode breaks session locks and LISTEN)
and holds a session-level advisory lock per shard it follows. Twice a second it probes that
connection, counts the replicas (connections with this application name in the database), and
takes free shards up to its share or gives back its surplus, so the shards spread evenly and
move when a replica joins or leaves. A replica that dies loses its session, and so its locks:
the others take its shards at their next probe. A replica whose connection fails or is
terminated stops following its shards at once, before anyone else can hold them, and competes
again once it has reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
import zlib
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.engine import make_url

from bot.handover import CHANNEL

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

SHARDS = 64
# The first key of every shard's two-key advisory lock: "clip" in ASCII, apart from other apps'.
LOCK_SPACE = 0x636C6970
APPLICATION_NAME = "rhombus-clip-bot shards"
PROBE_SECONDS = 0.5
PROBE_TIMEOUT_SECONDS = 2.0
CONNECT_TIMEOUT_SECONDS = 5.0
# Holders read their shards' trackings again this often, in case a notice was lost.
RESCAN_SECONDS = (30.0, 60.0)
# The server drops a dead peer's session (and its locks) within about 25 s of silence
# (idle + interval x count, or the user timeout with data unacknowledged).
KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "30000",
}

_REPLICAS = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE application_name = $1 AND datname = current_database()"
)
_TAKEN = (
    "SELECT objid::int FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
    "AND classid = $1::int::oid "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)

Shards = frozenset[int]


def shard_of(team_id: str) -> int:
    """The shard a workspace's trackings belong to (stable across processes and versions)."""
    return zlib.crc32(team_id.encode()) % SHARDS


class ShardHolder:
    """Holds this replica's share of the shards and follows their trackings through callbacks.

    `gained(shards)` runs once a shard's lock is held, `lost(shards, orderly)` once this replica
    stops following them (`orderly`: before the lock is given back, so work under way may end
    first; otherwise the connection is gone and the locks with it), `heard(payload)` for each
    notice, `rescan()` every 30 to 60 s.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._held: set[int] = set()
        self._since: dict[int, float] = {}  # when each shard held was taken
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._next_rescan = 0.0
        self._gained: Callable[[Shards], Awaitable[None]] | None = None
        self._lost: Callable[[Shards, bool], Awaitable[None]] | None = None
        self._heard: Callable[[str], Awaitable[None]] | None = None
        self._rescan: Callable[[], Awaitable[None]] | None = None
        self.handovers = 0  # shards gained or lost since start

    @classmethod
    def for_database(cls, database_url: str) -> ShardHolder | None:
        """A holder for a PostgreSQL database URL; None for SQLite (one process holds all)."""
        url = make_url(database_url)
        if url.get_backend_name() != "postgresql":
            return None
        return cls(url.set(drivername="postgresql").render_as_string(hide_password=False))

    @property
    def held(self) -> Shards:
        """The shards this replica follows now."""
        return frozenset(self._held)

    def holds(self, team_id: str) -> bool:
        """Whether this replica follows that workspace's clips now."""
        return shard_of(team_id) in self._held

    async def start(
        self,
        *,
        gained: Callable[[Shards], Awaitable[None]],
        lost: Callable[[Shards, bool], Awaitable[None]],
        heard: Callable[[str], Awaitable[None]],
        rescan: Callable[[], Awaitable[None]],
    ) -> None:
        """Take a first share now (all of them when alone), then keep probing in the background."""
        self._gained, self._lost, self._heard, self._rescan = gained, lost, heard, rescan
        self._schedule_rescan()
        await self._probe()
        self._task = asyncio.create_task(self._run(), name="shards")

    async def stop_taking(self) -> None:
        """Take no more shards (shutting down); those held stay held until `close`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        """Give every shard back and close the connection (the trackings were drained before)."""
        await self.stop_taking()
        for task in list(self._pending):
            task.cancel()
        connection, self._connection = self._connection, None
        released, self._held = len(self._held), set()
        if connection is None or connection.is_closed():
            return
        try:
            await connection.execute("SELECT pg_advisory_unlock_all()", timeout=1.0)
            await connection.close(timeout=1.0)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            connection.terminate()
        logger.info("gave back %d shard(s)", released)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(PROBE_SECONDS)
            try:
                await self._probe()
            except Exception:
                logger.exception("shard probe failed")
                await self._step_down("the probe failed")

    async def _probe(self) -> None:
        """Check the connection, then take or give back shards toward this replica's share."""
        connection = self._connection
        if connection is None or connection.is_closed():
            connection = await self._connect()
            if connection is None:
                return
        try:
            replicas = await connection.fetchval(
                _REPLICAS, APPLICATION_NAME, timeout=PROBE_TIMEOUT_SECONDS
            )
            share = math.ceil(SHARDS / max(1, replicas))
            if len(self._held) > share:
                await self._give_back(connection, len(self._held) - share)
            elif len(self._held) < share:
                await self._take(connection, share - len(self._held))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            await self._step_down(f"the lock connection failed: {error!r}")
            return
        if time.monotonic() >= self._next_rescan and self._held and self._rescan is not None:
            self._schedule_rescan()
            await self._rescan()

    async def _connect(self) -> asyncpg.Connection | None:
        try:
            connection = await asyncpg.connect(
                self._dsn,
                timeout=CONNECT_TIMEOUT_SECONDS,
                server_settings={"application_name": APPLICATION_NAME, **KEEPALIVES},
            )
            await connection.add_listener(CHANNEL, self._on_notify)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("cannot reach the database for shards: %r; retrying", error)
            return None
        connection.add_termination_listener(self._on_terminated)
        self._connection = connection
        return connection

    async def _take(self, connection: asyncpg.Connection, wanted: int) -> None:
        taken = {row[0] for row in await connection.fetch(_TAKEN, LOCK_SPACE, timeout=2.0)}
        free = [shard for shard in range(SHARDS) if shard not in taken | self._held]
        random.shuffle(free)  # replicas starting together do not all try the same ones first
        gained: set[int] = set()
        for shard in free:
            if len(gained) == wanted:
                break
            if await connection.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)",
                LOCK_SPACE,
                shard,
                timeout=PROBE_TIMEOUT_SECONDS,
            ):
                gained.add(shard)
        if not gained:
            return
        self._held |= gained
        self._since.update(dict.fromkeys(gained, time.monotonic()))
        self.handovers += len(gained)
        logger.info("took %d shard(s), holding %d", len(gained), len(self._held))
        if self._gained is not None:
            await self._gained(frozenset(gained))

    async def _give_back(self, connection: asyncpg.Connection, surplus: int) -> None:
        """Stop following the surplus shards, then unlock them for another replica.

        Those held longest go: a shard that has just moved here is not moved again at once.
        """
        given = frozenset(
            sorted(self._held, key=lambda shard: (self._since[shard], shard))[:surplus]
        )
        self._held -= given
        self.handovers += len(given)
        if self._lost is not None:
            await self._lost(given, True)  # noqa: FBT003
        for shard in given:
            await connection.fetchval(
                "SELECT pg_advisory_unlock($1, $2)",
                LOCK_SPACE,
                shard,
                timeout=PROBE_TIMEOUT_SECONDS,
            )
        logger.info("gave back %d shard(s), holding %d", len(given), len(self._held))

    async def _step_down(self, reason: str) -> None:
        """Stop following every shard at once; the session, and its locks, are dropped."""
        lost = self._drop_all(reason)
        if lost and self._lost is not None:
            await self._lost(lost, False)  # noqa: FBT003

    def _drop_all(self, reason: str) -> Shards:
        connection, self._connection = self._connection, None
        lost, self._held = frozenset(self._held), set()
        if connection is not None:
            connection.terminate()
        if lost:
            self.handovers += len(lost)
            logger.error("stopped following %d shard(s): %s", len(lost), reason)
        return lost

    def _on_terminated(self, connection: asyncpg.Connection) -> None:
        # Called as soon as the connection drops (pg_terminate_backend, a reset socket): from
        # here on this replica neither takes nor edits anything of those shards.
        if connection is self._connection:
            lost = self._drop_all("the lock connection was closed")
            if lost and self._lost is not None:
                self._spawn(self._lost(lost, False))  # noqa: FBT003

    def _on_notify(
        self, _connection: asyncpg.Connection, _pid: int, _channel: str, payload: str
    ) -> None:
        if self._heard is not None:
            self._spawn(self._heard(payload))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _schedule_rescan(self) -> None:
        self._next_rescan = time.monotonic() + random.uniform(*RESCAN_SECONDS)  # noqa: S311
