"""Log lines: text by default, JSON when asked, with the ids of the tracking they are about."""

from __future__ import annotations

import json
import logging

from bot.logs import JsonFormatter, TextFormatter, configure_logging

CONTEXT = {"tracking": "t1", "team": "T1", "channel": "C1", "clip": "AAAAAAAAAAAAAAAAAAAAAA"}


def _record() -> logging.LogRecord:
    record = logging.makeLogRecord(
        {
            "name": "bot.tracker",
            "levelname": "WARNING",
            "levelno": 30,
            "msg": "tracking %s: gone",
            "args": ("t1",),
        }
    )
    record.__dict__.update(CONTEXT)
    return record


def test_json_lines_carry_the_ids():
    """A JSON line holds the message and each id as its own field."""
    entry = json.loads(JsonFormatter().format(_record()))

    assert "tracking t1: gone" == entry["message"]
    assert "warning" == entry["level"]
    assert CONTEXT == {key: entry[key] for key in CONTEXT}


def test_text_lines_carry_the_ids():
    """A text line ends with the ids as key=value."""
    line = TextFormatter("%(levelname)s %(message)s").format(_record())

    assert (
        "WARNING tracking t1: gone [tracking=t1 team=T1 channel=C1 clip=AAAAAAAAAAAAAAAAAAAAAA]"
        == line
    )


def test_scheduler_chatter_is_left_out(capsys):
    """Per-poll and per-call lines of APScheduler and httpx are dropped; the bot's own are kept."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("INFO")
        logging.getLogger("apscheduler.scheduler").warning(
            "Execution of job x skipped: maximum number of running instances reached (1)"
        )
        logging.getLogger("apscheduler.executors.default").info('Running job "follow x"')
        logging.getLogger("apscheduler.scheduler").info('Added job "follow x" to job store')
        logging.getLogger("httpx").info('HTTP Request: POST http://rhombus "HTTP/1.1 200 OK"')
        logging.getLogger("bot.tracker").warning("tracking t1: gone")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)

    written = capsys.readouterr().err
    assert "tracking t1: gone" in written
    assert "maximum number of running instances" not in written
    assert "Running job" not in written
    assert "Added job" not in written
    assert "HTTP Request" not in written


def test_bolts_warning_about_the_unused_token_is_not_logged(capsys):
    """Bolt warns that a token beside a client is unused; the bot passes its client on purpose."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO")
    try:
        bolt = logging.getLogger("slack_bolt.AsyncApp")
        bolt.warning("As you gave `client` as well, `token` will be unused.")
        bolt.warning("something else")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logged = capsys.readouterr().err
    assert "will be unused" not in logged
    assert "something else" in logged
