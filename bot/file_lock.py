"""One bot per SQLite file: a lock beside the database, held for as long as the process runs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING, Self

from bot.store import StoreError

if TYPE_CHECKING:
    from pathlib import Path


class DatabaseInUseError(StoreError):
    """Another bot process already runs on that SQLite file."""


class SqliteFileLock:
    """An exclusive `flock` on `<database>.lock`, with the holder's pid written in it.

    Two bots on one SQLite file would both poll and both edit every status message. The
    operating system drops the lock when the process ends, even on `kill -9`, so a crash never
    leaves a stale lock behind.
    """

    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, database: Path) -> Self:
        """Hold the lock of that database file; DatabaseInUseError if another process holds it."""
        path = database.with_name(database.name + ".lock")
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(
                f"cannot open the database {database}: cannot create {path}: {error.strerror}"
            ) from error
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise DatabaseInUseError(
                f"cannot open the database {database}: another bot process{holder} is running "
                "on it; stop that one first, or set DATABASE_URL to PostgreSQL to run several"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        return cls(descriptor)

    def release(self) -> None:
        """Let another process run on the file."""
        if self._descriptor is not None:
            os.close(self._descriptor)  # closing drops the flock
            self._descriptor = None


def _holder(descriptor: int) -> str:
    """` (pid N)` naming the process holding the lock, when it has written its pid yet."""
    with contextlib.suppress(OSError, ValueError):
        return f" (pid {int(os.pread(descriptor, 32, 0))})"
    return ""
