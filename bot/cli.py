"""The command line: run the bot, the local demo or the Rhombus simulator; make a sealing key."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import sys
from typing import TYPE_CHECKING

from bot.config import ConfigError, Settings
from bot.logs import configure_logging

if TYPE_CHECKING:
    from collections.abc import Sequence

# The production image installs the bot alone; the stand-ins come with the source checkout.
_NO_STANDINS = (
    "the demo and the simulators are not part of this installation; "
    "install the project from its source checkout"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rhombus-clip-bot",
        description="Follow Rhombus saved clips in Slack with a live status message.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="run the bot (the default)")
    demo = commands.add_parser(
        "demo", help="run the bot against built-in stand-ins for Slack and Rhombus"
    )
    demo.add_argument("--speed", type=float, default=1.0, help="clip clock speed-up (default 1)")
    sim = commands.add_parser("rhombus-sim", help="run the Rhombus API simulator on its own")
    sim.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1 (default 8081)")
    sim.add_argument("--scenario", default="demo", help="demo, empty, bench or flaky")
    sim.add_argument("--api-key", default="sim-key", help="the API key it accepts")
    commands.add_parser("new-key", help="print a fresh key for ENCRYPTION_KEYS")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command the arguments name; the process's exit status."""
    args = _parser().parse_args(argv)
    if args.command == "new-key":
        from bot.secret_box import SecretBox  # noqa: PLC0415  # keeps the other commands lean

        print(SecretBox.new_key())  # noqa: T201  # the key is the command's output
        return 0
    if args.command in {"demo", "rhombus-sim"}:
        return _run_standin(args)
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(error, file=sys.stderr)  # noqa: T201  # before logging exists, stderr is the channel
        return 2
    from bot.runtime import serve  # noqa: PLC0415  # keeps `--help` and config errors fast
    from bot.store import StoreError  # noqa: PLC0415  # likewise: it pulls in SQLAlchemy

    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except StoreError as error:
        # A database the bot cannot open is a setting to fix, not a crash to debug.
        print(error, file=sys.stderr)  # noqa: T201
        return 2
    return 0


def _run_standin(args: argparse.Namespace) -> int:
    """Run the demo or the Rhombus simulator, when this installation has them."""
    if importlib.util.find_spec("standins") is None:
        print(_NO_STANDINS, file=sys.stderr)  # noqa: T201  # logging is not configured yet
        return 2
    if args.command == "demo":
        from standins.demo import run_demo  # noqa: PLC0415  # the demo pulls in both simulators

        configure_logging("WARNING")
        return asyncio.run(run_demo(speed=args.speed))
    from standins.rhombus import serve as serve_simulator  # noqa: PLC0415

    configure_logging("INFO")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_simulator(port=args.port, scenario=args.scenario, api_key=args.api_key))
    return 0
