"""The "Connect Rhombus" modal and the App Home's Rhombus section, and reading a submission.

Pure: rendering reads nothing but its arguments; reading a submission returns the request or, per
block, what is wrong (Slack shows each under its field: `response_action: errors`). The key is
never rendered back: a connected workspace sees its last 4 characters only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from bot.blocks import (
    JsonBlock,
    button,
    date_token,
    escape_mrkdwn,
    is_user_id,
    mrkdwn,
    plain,
    section,
)
from bot.clips import CLIP_ID_PATTERN
from bot.rhombus_keys import KEY_KINDS, REGIONS, KeyKind, Region

if TYPE_CHECKING:
    from collections.abc import Iterable

    from bot.rhombus_keys import RhombusConnection

CONNECT_MODAL = "rhombus_connect_modal"
ACTION_CONNECT = "rhombus_connect"  # the Home's "Connect Rhombus" and "Change" buttons
KEY_BLOCK, KEY_ACTION = "rhombus_key", "rhombus_key_text"
REGION_BLOCK, REGION_ACTION = "rhombus_region", "rhombus_region_pick"
KIND_BLOCK, KIND_ACTION = "rhombus_kind", "rhombus_kind_pick"
CLIENT_BLOCK, CLIENT_ACTION = "rhombus_client_org", "rhombus_client_org_text"
DISCONNECT_BLOCK, DISCONNECT_ACTION = "rhombus_disconnect", "rhombus_disconnect_pick"
DISCONNECT = "disconnect"

KEY_MIN, KEY_MAX = 8, 200
# An HTTP header carries the key: visible ASCII only (RFC 9110 field-value, no spaces).
_KEY_CHARACTERS = re.compile(r"[\x21-\x7e]+")
REGION_LABELS: dict[Region, str] = {
    "US": "US (console.rhombussystems.com)",
    "EU": "EU (console.eu.rhombussystems.com)",
}
KIND_LABELS: dict[KeyKind, str] = {
    "api": "API key of the organisation",
    "partner": "Partner key, for one client organisation",
}
WHERE_KEYS_ARE = "Rhombus console → Settings → API Management"


@dataclass(frozen=True)
class ConnectRequest:
    """A submitted Connect modal, checked: connect with these settings, or disconnect."""

    api_key: SecretStr | None  # None: keep the key already stored
    region: Region
    kind: KeyKind
    client_org: str | None  # a partner key's client organisation
    disconnect: bool = False


def render_modal(connection: RhombusConnection | None) -> JsonBlock:
    """The modal, blank for a first connection, else with the stored settings but not the key."""
    region = connection.region if connection else "US"
    kind = connection.kind if connection else "api"
    key_input: JsonBlock = {
        "type": "input",
        "block_id": KEY_BLOCK,
        "label": plain("Rhombus API key"),
        "element": {
            "type": "plain_text_input",
            "action_id": KEY_ACTION,
            "max_length": KEY_MAX,
            "placeholder": plain("Paste the key"),
        },
        "hint": plain(
            f"Leave empty to keep the key ending …{connection.last4}."
            if connection
            else f"Create one in the {WHERE_KEYS_ARE}. It is stored encrypted and never shown "
            "again."
        ),
    }
    if connection:
        key_input["optional"] = True
    client: JsonBlock = {
        "type": "plain_text_input",
        "action_id": CLIENT_ACTION,
        "max_length": 64,
        "placeholder": plain("22 characters, e.g. AbCdEfGhIjKlMnOpQrStUv"),
    }
    if connection and connection.client_org:
        client["initial_value"] = connection.client_org
    blocks: list[JsonBlock] = []
    if connection:
        blocks.append(section(mrkdwn(connected_line(connection))))
    blocks += [
        key_input,
        _radio(REGION_BLOCK, "Region", REGION_ACTION, REGION_LABELS.items(), region),
        _radio(KIND_BLOCK, "Kind of key", KIND_ACTION, KIND_LABELS.items(), kind),
        {
            "type": "input",
            "block_id": CLIENT_BLOCK,
            "label": plain("Client organisation"),
            "element": client,
            "optional": True,
            "hint": plain("Partner keys only: the uuid of the client organisation to act for."),
        },
    ]
    if connection:
        blocks.append(
            {
                "type": "input",
                "block_id": DISCONNECT_BLOCK,
                "label": plain("Disconnect"),
                "optional": True,
                "element": {
                    "type": "checkboxes",
                    "action_id": DISCONNECT_ACTION,
                    "options": [
                        {
                            "text": plain("Disconnect Rhombus and forget the key"),
                            "value": DISCONNECT,
                        }
                    ],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": CONNECT_MODAL,
        "title": plain("Connect Rhombus"),
        "submit": plain("Save" if connection else "Connect"),
        "close": plain("Cancel"),
        "blocks": blocks,
    }


def refusal_modal(text: str) -> JsonBlock:
    """A modal saying why the person cannot connect Rhombus (no fields, no submit)."""
    return {
        "type": "modal",
        "title": plain("Connect Rhombus"),
        "close": plain("Close"),
        "blocks": [section(mrkdwn(text))],
    }


def connected_line(connection: RhombusConnection) -> str:
    """`Rhombus: US, key …ab12, connected by @x on <date>` (mrkdwn)."""
    kind = (
        f"partner key for client organisation `{escape_mrkdwn(connection.client_org or '')}`"
        if connection.kind == "partner"
        else "key"
    )
    when = date_token(int(connection.connected_at))
    return (
        f"*Rhombus:* {connection.region}, {kind} ending …{escape_mrkdwn(connection.last4)}, "
        f"connected by {_mention(connection.connected_by)}" + (f" on {when}" if when else "")
    )


def home_section(connection: RhombusConnection | None, *, may_connect: bool) -> list[JsonBlock]:
    """The top of the App Home: whether Rhombus is connected, and for those who may, a button."""
    if connection is None:
        if not may_connect:
            return [
                section(
                    mrkdwn(
                        "*Rhombus is not connected.* Ask a workspace admin to connect Rhombus "
                        "here, in the bot's Home tab."
                    )
                )
            ]
        block = section(
            mrkdwn(
                "*Rhombus is not connected.* Connect this workspace's Rhombus organisation to "
                "follow its clips from Slack."
            )
        )
        block["accessory"] = button("Connect Rhombus", ACTION_CONNECT, value="", style="primary")
        return [block]
    block = section(mrkdwn(connected_line(connection)))
    if may_connect:
        block["accessory"] = button("Change", ACTION_CONNECT, value="")
    return [block]


def who_may_connect(installer: str | None) -> str:
    """Who may connect Rhombus in this workspace (mrkdwn)."""
    also = f", or {_mention(installer)} who installed the app" if installer else ""
    return f"Only a workspace admin or owner{also} can connect Rhombus here. Ask one of them."


def parse_submission(state: object, *, connected: bool) -> ConnectRequest | dict[str, str]:
    """The request from `view.state.values`, or the message for each block that is wrong.

    `connected`: the workspace already has a key, so an empty key keeps it.
    """
    values = state if isinstance(state, dict) else {}
    if DISCONNECT in _selected(values, DISCONNECT_BLOCK, DISCONNECT_ACTION) and connected:
        return ConnectRequest(None, "US", "api", None, disconnect=True)
    errors: dict[str, str] = {}
    key = _text(values, KEY_BLOCK, KEY_ACTION)
    if key is None and not connected:
        errors[KEY_BLOCK] = f"Paste the organisation's API key ({WHERE_KEYS_ARE})."
    elif key is not None and (problem := _key_problem(key)):
        errors[KEY_BLOCK] = problem
    region = _picked(values, REGION_BLOCK, REGION_ACTION, REGIONS)
    if region is None:
        errors[REGION_BLOCK] = "Choose the region of the Rhombus console the organisation uses."
    kind = _picked(values, KIND_BLOCK, KIND_ACTION, KEY_KINDS)
    if kind is None:
        errors[KIND_BLOCK] = "Choose whether this is an API key or a partner key."
    client_org = _text(values, CLIENT_BLOCK, CLIENT_ACTION)
    if kind == "partner":
        if client_org is None:
            errors[CLIENT_BLOCK] = (
                "A partner key acts for one client organisation: give that organisation's uuid."
            )
        elif CLIP_ID_PATTERN.fullmatch(client_org) is None:
            errors[CLIENT_BLOCK] = (
                "A Rhombus organisation uuid is 22 characters of A-Z a-z 0-9 - and _."
            )
    if errors or region is None or kind is None:
        return errors
    return ConnectRequest(
        api_key=None if key is None else SecretStr(key),
        region=cast("Region", region),
        kind=cast("KeyKind", kind),
        client_org=client_org if kind == "partner" else None,
    )


def _key_problem(key: str) -> str | None:
    if any(character.isspace() for character in key):
        return "An API key has no spaces: paste the key alone."
    if not _KEY_CHARACTERS.fullmatch(key):
        return "That is not an API key: it has characters Rhombus keys do not."
    if len(key) < KEY_MIN:
        return f"That is too short for a Rhombus API key ({WHERE_KEYS_ARE})."
    if len(key) > KEY_MAX:
        return f"That is too long for a Rhombus API key (at most {KEY_MAX} characters)."
    return None


def _radio(
    block_id: str, label: str, action_id: str, options: Iterable[tuple[str, str]], initial: str
) -> JsonBlock:
    choices = [{"text": plain(text), "value": value} for value, text in options]
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "element": {
            "type": "radio_buttons",
            "action_id": action_id,
            "options": choices,
            "initial_option": next(c for c in choices if c["value"] == initial),
        },
    }


def _element(values: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    found = values.get(block)
    element = found.get(action) if isinstance(found, dict) else None
    return element if isinstance(element, dict) else {}


def _text(values: dict[str, Any], block: str, action: str) -> str | None:
    value = _element(values, block, action).get("value")
    return value.strip() or None if isinstance(value, str) else None


def _picked(
    values: dict[str, Any], block: str, action: str, allowed: tuple[str, ...]
) -> str | None:
    option = _element(values, block, action).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return value if value in allowed else None


def _selected(values: dict[str, Any], block: str, action: str) -> set[str]:
    options = _element(values, block, action).get("selected_options")
    if not isinstance(options, list):
        return set()
    return {str(o.get("value")) for o in options if isinstance(o, dict)}


def _mention(user_id: str) -> str:
    return f"<@{user_id}>" if is_user_id(user_id) else "someone"
