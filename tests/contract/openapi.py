"""Check a request and answer recorded by the Rhombus simulator against Rhombus's OpenAPI spec."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters

if TYPE_CHECKING:
    from collections.abc import Mapping

    from standins.rhombus import Exchange

SPEC_PATH = Path(__file__).with_name("rhombus-openapi.json")
DOCUMENTED_AUTH_SCHEMES = ("api-token", "api", "partner-api-token", "partner-api")


@dataclass(frozen=True)
class RhombusSpec:
    """The loaded spec and the server its paths hang from."""

    openapi: OpenAPI
    server_url: str


@functools.cache
def rhombus_spec() -> RhombusSpec:
    """The Rhombus spec, loaded and checked once."""
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    # The production spec gives x-auth-scheme minLength = maxLength = 9, which only "api-token"
    # fits, while the docs page for the same call lists four schemes Rhombus accepts. Check the
    # documented list, so a partner request is not called off-contract. The file stays as
    # published.
    document["components"]["parameters"]["XAuthSchemeParam"]["schema"] = {
        "type": "string",
        "enum": list(DOCUMENTED_AUTH_SCHEMES),
    }
    return RhombusSpec(OpenAPI.from_dict(document), document["servers"][0]["url"])


@dataclass
class RecordedRequest:
    """A recorded request, as openapi-core's Request protocol sees it."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass(frozen=True)
class RecordedResponse:
    """A recorded answer, as openapi-core's Response protocol sees it."""

    status_code: int
    content_type: str
    headers: Mapping[str, str]
    data: bytes | None


def validate_exchange(exchange: Exchange) -> None:
    """Fail with every way the request (and a 200 answer) departs from the Rhombus spec.

    Only 200 answers are described by the spec, so for any other answer, or none (a hang-up),
    only the request is checked.
    """
    loaded = rhombus_spec()
    spec = loaded.openapi
    request = RecordedRequest(
        host_url=loaded.server_url,
        path=exchange.path,
        method=exchange.method.lower(),
        body=exchange.body,
        content_type=exchange.headers.get("content-type", "").lower(),
        parameters=RequestParameters(header=exchange.headers),
    )
    problems = [f"request: {_describe(error)}" for error in spec.iter_request_errors(request)]
    if exchange.status == 200 and not problems:
        response = RecordedResponse(
            status_code=exchange.status,
            content_type=exchange.response_headers.get("content-type", "").lower(),
            headers=exchange.response_headers,
            data=exchange.response_body,
        )
        problems += [
            f"response: {_describe(error)}"
            for error in spec.iter_response_errors(request, response)
        ]
    if problems:
        listed = "\n  ".join(problems)
        raise AssertionError(
            f"{exchange.method} {exchange.path} -> {exchange.status} does not match the Rhombus"
            f" OpenAPI spec:\n  {listed}"
        )


def _describe(error: BaseException) -> str:
    """Name an openapi-core error by its chain of causes, down to the schema errors."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        schema_errors = getattr(current, "schema_errors", None)
        if schema_errors:
            parts.extend(
                f"at {'/'.join(str(step) for step in e.absolute_path) or '(top)'}: {e.message}"
                for e in schema_errors
            )
        else:
            text = str(current)
            cause = current.__cause__
            # openapi-core repeats a cause's text in the error that wraps it: say it once.
            if not text or (cause is not None and str(cause) and str(cause) in text):
                parts.append(type(current).__name__)
            else:
                parts.append(_shorten(text))
        current = current.__cause__
    return "; ".join(dict.fromkeys(parts))


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
