"""The Slack app manifest people paste into Slack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.app import SHORTCUT_CALLBACK_ID
from bot.config import OAUTH_REDIRECT_PATH
from bot.distribution import BOT_SCOPES
from bot.unfurl_view import CONSOLE_HOSTS

ROOT = Path(__file__).parent.parent
SCHEMA = json.loads((Path(__file__).parent / "schemas" / "manifest.schema.1.0.0.json").read_text())


def _manifest():
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_matches_slack_schema():
    """manifest.yml validates against Slack's app-manifest JSON Schema."""
    jsonschema.validate(_manifest(), SCHEMA)


def test_schema_rejects_a_broken_manifest():
    """The schema check can fail: a shortcut without a callback_id is refused."""
    manifest = _manifest()
    del manifest["features"]["shortcuts"][0]["callback_id"]

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(manifest, SCHEMA)


def test_manifest_declares_what_the_bot_listens_to():
    """/clip, the message shortcut, interactivity and Socket Mode are declared."""
    manifest = _manifest()

    assert ["/clip"] == [c["command"] for c in manifest["features"]["slash_commands"]]
    assert [("message", SHORTCUT_CALLBACK_ID)] == [
        (s["type"], s["callback_id"]) for s in manifest["features"]["shortcuts"]
    ]
    assert manifest["settings"]["interactivity"]["is_enabled"]
    assert manifest["settings"]["socket_mode_enabled"]


def test_manifest_asks_only_for_needed_scopes():
    """Post and edit, read back its messages, unfurl links, upload videos, read time zones."""
    assert [
        "commands",
        "chat:write",
        "chat:write.public",
        "channels:history",
        "groups:history",
        "links:read",
        "links:write",
        "files:write",
        "channels:join",
        "files:read",
        "users:read",
    ] == _manifest()["oauth_config"]["scopes"]["bot"]


def test_manifest_declares_the_home_tab_events_and_unfurl_domains():
    """The Home tab, the two events the bot listens to, and the Rhombus consoles to unfurl."""
    manifest = _manifest()

    assert manifest["features"]["app_home"]["home_tab_enabled"]
    assert ["app_home_opened", "link_shared"] == manifest["settings"]["event_subscriptions"][
        "bot_events"
    ]
    assert sorted(CONSOLE_HOSTS) == sorted(manifest["features"]["unfurl_domains"])


def test_the_http_mode_urls_the_manifest_describes_are_valid():
    """With the commented HTTP-mode URLs filled in, including the options load URL, it validates."""
    manifest = _manifest()
    url = "https://clips.example.com/slack/events"
    manifest["settings"]["socket_mode_enabled"] = False
    manifest["features"]["slash_commands"][0]["url"] = url
    manifest["settings"]["interactivity"] |= {"request_url": url, "message_menu_options_url": url}
    jsonschema.validate(manifest, SCHEMA)
    assert "message_menu_options_url: https://" in (ROOT / "manifest.yml").read_text()


def _distribution_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load((ROOT / "manifest.distribution.yml").read_text())
    return manifest


def test_the_many_workspaces_manifest_matches_slack_schema() -> None:
    """manifest.distribution.yml validates against Slack's schema too."""
    jsonschema.validate(_distribution_manifest(), SCHEMA)


def test_both_manifests_ask_for_the_scopes_an_install_asks_for() -> None:
    """The scopes "Add to Slack" asks each workspace for are the manifests' scopes."""
    assert list(BOT_SCOPES) == _manifest()["oauth_config"]["scopes"]["bot"]
    assert list(BOT_SCOPES) == _distribution_manifest()["oauth_config"]["scopes"]["bot"]


def test_the_many_workspaces_manifest_brings_installs_back_and_hears_uninstalls() -> None:
    """The OAuth redirect is the bot's, uninstall events are subscribed, requests go over HTTP."""
    manifest = _distribution_manifest()
    (redirect,) = manifest["oauth_config"]["redirect_urls"]
    assert redirect.endswith(OAUTH_REDIRECT_PATH)
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"app_uninstalled", "tokens_revoked", "app_home_opened", "link_shared"} == set(events)
    assert not manifest["settings"]["socket_mode_enabled"]
    single = _manifest()
    for part in ("features", "display_information"):
        drop = {"slash_commands"} if part == "features" else set()
        assert {k: v for k, v in single[part].items() if k not in drop} == {
            k: v for k, v in manifest[part].items() if k not in drop
        }
