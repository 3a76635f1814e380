"""A Bolt app that only acknowledges `/clip`, served through Bolt's dispatch: Bolt's own cost.

`serving_bare_bolt(slack_api_url)` runs `python -m bench.bare_bolt SLACK_API_URL` and yields the
URL of its `/slack/events`. The child builds an `AsyncApp` with the benchmarks' signing secret,
whose `/clip` listener calls `ack()` and nothing else, serves it with aiohttp on a free port of
127.0.0.1 (request -> `AsyncBoltRequest` -> `async_dispatch`, the answer after Bolt's; the bot
itself answers commands before dispatching them), prints the port as one JSON line and serves
until its stdin closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bench.bot_process import PROJECT_ROOT
from bench.stage import SIGNING_SECRET

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

READY_TIMEOUT_SECONDS = 30.0


@contextlib.asynccontextmanager
async def serving_bare_bolt(slack_api_url: str) -> AsyncIterator[str]:
    """Run the ack-only Bolt app in a child process; its events URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_bolt",
        slack_api_url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    try:
        if process.stdout is None:
            raise RuntimeError("the Bolt process has no stdout")
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Bolt process ended (exit status {await process.wait()})")
        yield f"http://127.0.0.1:{json.loads(line)['port']}/slack/events"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        await process.wait()


async def _serve(slack_api_url: str) -> None:
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-sim", base_url=slack_api_url),  # noqa: S106  # the fake's
        signing_secret=SIGNING_SECRET,
    )

    async def acknowledge(ack: AsyncAck) -> None:
        await ack()

    app.command("/clip")(acknowledge)

    async def events(request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8", errors="replace")
        bolt_request = AsyncBoltRequest(
            body=body, query=request.query_string, headers=dict(request.headers)
        )
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    application = web.Application()
    application.router.add_post("/slack/events", events)
    runner = web.AppRunner(application, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sys.stdout.write(json.dumps({"port": runner.addresses[0][1]}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    await stdin.read()  # until the benchmark closes it
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the ack-only app for the Slack Web API at argv[0] until stdin closes."""
    arguments = sys.argv[1:] if argv is None else argv
    asyncio.run(_serve(arguments[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
