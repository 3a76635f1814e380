"""The Connect Rhombus modal, the Home's Rhombus section, and reading a submission."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.connect_view import (
    ACTION_CONNECT,
    CLIENT_ACTION,
    CLIENT_BLOCK,
    DISCONNECT,
    DISCONNECT_ACTION,
    DISCONNECT_BLOCK,
    KEY_ACTION,
    KEY_BLOCK,
    KIND_ACTION,
    KIND_BLOCK,
    REGION_ACTION,
    REGION_BLOCK,
    ConnectRequest,
    home_section,
    parse_submission,
    refusal_modal,
    render_modal,
    who_may_connect,
)
from bot.rhombus_keys import RhombusConnection
from tests.helpers import assert_inert, text_objects

KEY = "rk-Acme-0123456789-secret-ab12"
CLIENT = "ClientOrg000000000000A"
CONNECTED = RhombusConnection(
    team_id="T0ACME",
    api_key=SecretStr(KEY),
    region="EU",
    kind="partner",
    client_org=CLIENT,
    connected_by="U0ALICE",
    connected_at=1_764_000_000.0,
)


def values(
    key: str | None = KEY,
    region: str | None = "US",
    kind: str | None = "api",
    client: str | None = None,
    *,
    disconnect: bool = False,
) -> dict[str, Any]:
    """The modal's state.values as Slack sends them."""

    def radio(value: str | None) -> dict[str, Any]:
        picked = {"selected_option": {"value": value, "text": {"type": "plain_text", "text": "x"}}}
        return {"type": "radio_buttons", **(picked if value else {"selected_option": None})}

    state: dict[str, Any] = {
        KEY_BLOCK: {KEY_ACTION: {"type": "plain_text_input", "value": key}},
        REGION_BLOCK: {REGION_ACTION: radio(region)},
        KIND_BLOCK: {KIND_ACTION: radio(kind)},
        CLIENT_BLOCK: {CLIENT_ACTION: {"type": "plain_text_input", "value": client}},
    }
    boxes = [{"value": DISCONNECT, "text": {"type": "plain_text", "text": "x"}}]
    state[DISCONNECT_BLOCK] = {
        DISCONNECT_ACTION: {"type": "checkboxes", "selected_options": boxes if disconnect else []}
    }
    return state


def test_the_first_connect_modal_is_valid_and_asks_for_everything() -> None:
    """Block Kit's View model accepts it; the key is required; nothing to disconnect."""
    modal = render_modal(None)

    View(**modal).validate_json()
    assert [KEY_BLOCK, REGION_BLOCK, KIND_BLOCK, CLIENT_BLOCK] == [
        block["block_id"] for block in modal["blocks"]
    ]
    key = modal["blocks"][0]
    assert "optional" not in key
    assert ("US", "api") == (
        modal["blocks"][1]["element"]["initial_option"]["value"],
        modal["blocks"][2]["element"]["initial_option"]["value"],
    )
    assert "API Management" in key["hint"]["text"]


def test_a_connected_workspace_sees_the_last_4_characters_and_never_the_key() -> None:
    """Settings as stored, the key optional with the hint, and a way to disconnect."""
    modal = render_modal(CONNECTED)

    View(**modal).validate_json()
    shown = json.dumps(modal)
    assert KEY[:-4] not in shown
    blocks = {block.get("block_id"): block for block in modal["blocks"]}
    assert "Leave empty to keep the key ending …ab12." == blocks[KEY_BLOCK]["hint"]["text"]
    assert (True, None) == (
        blocks[KEY_BLOCK]["optional"],
        blocks[KEY_BLOCK]["element"].get("initial_value"),
    )
    assert ("EU", "partner", CLIENT) == (
        blocks[REGION_BLOCK]["element"]["initial_option"]["value"],
        blocks[KIND_BLOCK]["element"]["initial_option"]["value"],
        blocks[CLIENT_BLOCK]["element"]["initial_value"],
    )
    assert DISCONNECT_BLOCK in blocks
    (line,) = text_objects(modal["blocks"][0], "mrkdwn")
    assert line.startswith("*Rhombus:* EU, partner key for client organisation")
    assert "ending …ab12, connected by <@U0ALICE> on <!date^1764000000^" in line


def test_a_valid_submission_is_a_request() -> None:
    """An API key in the US; a partner key for its client in the EU; the key kept secret."""
    assert ConnectRequest(SecretStr(KEY), "US", "api", None) == parse_submission(
        values(f"  {KEY} ", client=CLIENT), connected=False
    )
    partner = parse_submission(values(region="EU", kind="partner", client=CLIENT), connected=False)
    assert ConnectRequest(SecretStr(KEY), "EU", "partner", CLIENT) == partner
    assert KEY not in repr(partner)


def test_an_empty_key_keeps_the_stored_one_only_when_connected() -> None:
    """Connected: None (keep it); first connect: say where keys come from."""
    assert ConnectRequest(None, "EU", "api", None) == parse_submission(
        values(None, region="EU"), connected=True
    )
    assert {KEY_BLOCK} == set(parse_submission(values("   "), connected=False))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("submitted", "block", "said"),
    [
        (values(None), KEY_BLOCK, "Paste the organisation's API key"),
        (values("rk-abc def-123456"), KEY_BLOCK, "no spaces"),
        (values("short"), KEY_BLOCK, "too short"),
        (values("k" * 201), KEY_BLOCK, "too long"),
        (values("rk-clé-0123456789"), KEY_BLOCK, "characters Rhombus keys do not"),
        (values(kind="partner"), CLIENT_BLOCK, "give that organisation's uuid"),
        (values(kind="partner", client="Acme"), CLIENT_BLOCK, "22 characters"),
        (values(kind="partner", client=CLIENT + "x"), CLIENT_BLOCK, "22 characters"),
        (values(region=None), REGION_BLOCK, "Choose the region"),
        (values(region="APAC"), REGION_BLOCK, "Choose the region"),
        (values(kind="oauth"), KIND_BLOCK, "API key or a partner key"),
    ],
)
def test_each_wrong_field_is_named_under_it(
    submitted: dict[str, Any], block: str, said: str
) -> None:
    """Every mistake comes back under its own field, worded for the person."""
    errors = parse_submission(submitted, connected=False)
    assert isinstance(errors, dict)
    assert [block] == list(errors)
    assert said in errors[block]
    assert all(len(message) <= 150 for message in errors.values())


@pytest.mark.parametrize("state", [None, [], "x", {KEY_BLOCK: "x"}, {KEY_BLOCK: {KEY_ACTION: 5}}])
def test_garbage_state_is_errors_not_a_crash(state: object) -> None:
    """A submission with missing or odd values asks for the key, region and kind."""
    assert {KEY_BLOCK, REGION_BLOCK, KIND_BLOCK} == set(
        parse_submission(state, connected=False)  # type: ignore[arg-type]
    )


def test_disconnect_wins_over_the_other_fields_when_connected() -> None:
    """Ticked, it disconnects whatever else was typed; with nothing connected it means nothing."""
    request = parse_submission(values("bad key", disconnect=True), connected=True)
    assert isinstance(request, ConnectRequest)
    assert request.disconnect
    assert {KEY_BLOCK} == set(parse_submission(values("bad key", disconnect=True), connected=False))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("connection", "may", "said", "action"),
    [
        (None, True, "*Rhombus is not connected.* Connect this workspace", ACTION_CONNECT),
        (None, False, "Ask a workspace admin to connect Rhombus", None),
        (CONNECTED, True, "*Rhombus:* EU, partner key", ACTION_CONNECT),
        (CONNECTED, False, "*Rhombus:* EU, partner key", None),
    ],
)
def test_the_home_section_says_whether_rhombus_is_connected(
    connection: RhombusConnection | None, *, may: bool, said: str, action: str | None
) -> None:
    """A button for those who may connect it; advice for others; never the key."""
    blocks = home_section(connection, may_connect=may)
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    (block,) = blocks
    text = block["text"]["text"]
    assert said in text
    assert_inert(text, {"U0ALICE"})
    assert action == (block.get("accessory") or {}).get("action_id")
    assert KEY[:-4] not in json.dumps(blocks)
    if connection is not None and may:
        assert "Change" == block["accessory"]["text"]["text"]


def test_who_may_connect_names_the_installer_when_known() -> None:
    """Admins and owners always; the installer by mention when the install says who."""
    assert "<@U0CAROL> who installed the app" in who_may_connect("U0CAROL")
    assert "Only a workspace admin or owner can connect" in who_may_connect(None)
    View(**refusal_modal(who_may_connect("U0CAROL"))).validate_json()
