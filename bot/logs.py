"""Logging for the bot's process: plain text by default, one JSON object per line when asked."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

# Attributes every LogRecord has; anything else on a record came from `extra=` and is context.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with `extra=` fields (workspace, channel, clip, tracking) kept."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Plain text, with `extra=` context (workspace, channel, clip, tracking) as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text (plus a traceback, if any)."""
        line = super().format(record)
        context = " ".join(f"{k}={v}" for k, v in _context(record).items())
        if not context:
            return line
        head, newline, rest = line.partition("\n")
        return f"{head} [{context}]{newline}{rest}"


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class _BoltClientWarning(logging.Filter):
    """Drops Bolt's warning that SLACK_BOT_TOKEN is unused: the bot passes its own client."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


class _SkippedPoll(logging.Filter):
    """Drops APScheduler's line for a poll skipped because the last one still runs.

    That is what `max_instances=1` is for; with thousands of clips it would be thousands of lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def configure_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    """Send the process's logs to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(_BoltClientWarning())
    handler.addFilter(_SkippedPoll())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party loggers are chatty at DEBUG and can print request headers.
    for noisy in ("httpcore", "aiohttp.access", "slack_sdk", "slack_bolt"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # At INFO these say a line per HTTP call and per job added, run or removed, which would
    # drown the bot's own lines (it says itself what it follows and when it stops).
    for per_call in ("httpx", "apscheduler"):
        logging.getLogger(per_call).setLevel(max(logging.WARNING, logging.getLevelName(level)))
