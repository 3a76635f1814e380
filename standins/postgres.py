"""A throwaway PostgreSQL server for tests and benchmarks, and fresh databases in it."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from collections.abc import Iterator


class PostgresMissingError(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))), None
    )
    if found is None:
        raise PostgresMissingError(
            f"PostgreSQL's {name} is not installed (Debian package: postgresql)"
        )
    return found


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with trust auth for user `bot`: its `postgres` URL."""
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


async def fresh_database(server_url: str) -> str:
    """A new, empty database on the server (a test's or a benchmark run's own): its URL."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"
