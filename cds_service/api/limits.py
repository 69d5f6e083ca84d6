"""Input limits, so no request can hang the service or exhaust its memory. Every number is a
setting (cds_service/settings.py, README "Settings").

`BodyLimit` (ASGI middleware) reads each request body before the app sees it: at most
`max_bytes` (413) within `timeout` seconds (408). `check_json_shape` bounds what a parsed body
may contain: nesting depth and the size of any one array or object (a prefetch Bundle's entries).
`GatherLimits` holds what gathering one call's record may cost: the FHIR fetch's time, pages
and bytes per page, and the structural limits (core/structure.py) that prefetch and fetched
pages alike are held to as they are read: over one, prefetch is a 413 naming the limit and
where (`too_large`); a fetched page fails its key as a 5xx would.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cds_service.api.errors import HookError, error_response
from cds_service.core import StructureLimits, TooLarge
from cds_service.settings import Settings

MAX_JSON_DEPTH = 64  # a FHIR Bundle in prefetch in a hook request is about 15 deep
MAX_JSON_ITEMS = 20_000  # items in one array / members in one object

# A JSON escape for a character FHIR strings may not hold: below U+0020 except tab, LF, CR.
_FORBIDDEN_ESCAPE = re.compile(rb"\\(?:[bf]|u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]))")


LIMIT_SETTINGS = {
    "codings": "CDS_MAX_CODINGS",
    "string_chars": "CDS_MAX_STRING_CHARS",
    "bundle_entries": "CDS_MAX_BUNDLE_ENTRIES",
    "resources": "CDS_MAX_RESOURCES",
}


@dataclass(frozen=True)
class GatherLimits:
    budget: float  # seconds for all FHIR queries of one call together
    query_timeout: float  # seconds for one HTTP request (one page)
    max_pages: int  # Bundle pages read per query, the first included
    page_bytes: int = 5_000_000  # bytes of one fetched page (its body, decoded)
    structure: StructureLimits = field(default_factory=StructureLimits)

    @classmethod
    def from_settings(cls, settings: Settings) -> GatherLimits:
        return cls(
            settings.fhir_budget_seconds,
            settings.fhir_query_timeout_seconds,
            settings.fhir_max_pages,
            settings.fhir_max_page_bytes,
            StructureLimits(
                settings.max_codings,
                settings.max_string_chars,
                settings.max_bundle_entries,
                settings.max_resources,
            ),
        )


def too_large(error: TooLarge) -> str:
    """What broke a structural limit, where, and the setting that holds it."""
    return f"{error} ({LIMIT_SETTINGS[error.limit]})"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await self._too_large(scope, receive, send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            timed_out = error_response(
                408, f"request body not received within {self.timeout:g} seconds"
            )
            await timed_out(scope, receive, send)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()  # only http.disconnect is left
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = (
            f"request body is larger than {self.max_bytes} bytes, the limit this service accepts"
        )
        await error_response(413, message)(scope, receive, send)


def check_request_shape(data: Any) -> None:
    """The shape limits for a hook request, without walking inside prefetched resources.

    Walking a large prefetch node by node costs more than evaluating it, and nothing reads a
    prefetched resource deeper than its code and dates (cds_service/core/record.py): those that
    are read are validated by fhir.resources, and one nested too deep becomes an unreadable
    resource. So prefetch is held to its entry count; everything else to the full check.
    """
    if not isinstance(data, dict):
        check_json_shape(data)
        return
    check_json_shape({key: value for key, value in data.items() if key != "prefetch"})
    prefetch = data.get("prefetch")
    if not isinstance(prefetch, dict):
        check_json_shape(prefetch)
        return
    if len(prefetch) > MAX_JSON_ITEMS:
        raise HookError(413, f"prefetch has {len(prefetch)} keys; at most {MAX_JSON_ITEMS}")
    for value in prefetch.values():
        entries = value.get("entry") if isinstance(value, dict) else None
        if isinstance(entries, list) and len(entries) > MAX_JSON_ITEMS:
            raise HookError(
                413, f"a prefetch Bundle has {len(entries)} entries; at most {MAX_JSON_ITEMS}"
            )


def load_checked_json(body: bytes) -> Any:
    """`body` parsed, held to the JSON shape limits and FHIR's string rules: 400 / 413 + the
    reason otherwise (the worksheet and SMART app endpoints; a hook call also slices prefetch)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise HookError(400, f"request body is not valid JSON: {error}") from error
    check_json_shape(data)
    check_fhir_text(body)
    return data


def check_json_shape(data: Any) -> None:
    """HookError unless `data` nests at most MAX_JSON_DEPTH deep and no array or object has
    more than MAX_JSON_ITEMS items. Iterative: the check itself cannot overflow the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise HookError(400, f"request JSON nests deeper than {MAX_JSON_DEPTH} levels")
        if len(value) > MAX_JSON_ITEMS:
            raise HookError(
                413, f"a JSON array or object has {len(value)} items; at most {MAX_JSON_ITEMS}"
            )
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)


def check_fhir_text(body: bytes) -> None:
    """400 if any JSON string in `body` holds a control character FHIR forbids (FHIR R4
    §2.1.0.3, string: nothing below U+0020 but tab, LF and CR). A raw one is already invalid
    JSON; this finds the escaped form on the raw bytes, so prefetch costs a byte scan, not a
    walk. PostgreSQL cannot store a NUL at all: caught here, a call is refused before it is
    answered rather than answered and then lost from the audit."""
    if b"\\" not in body:
        return  # no escape at all (most calls): one memchr instead of the pattern's scan
    for found in _FORBIDDEN_ESCAPE.finditer(body):
        before = found.start() - 1
        while before >= 0 and body[before] == 0x5C:  # the backslashes just before this one
            before -= 1
        if (found.start() - 1 - before) % 2:
            continue  # an escaped backslash followed by plain text: `\\\\u0000`
        escape = found.group().lstrip(b"\\").decode()
        raise HookError(
            400,
            f"a string holds the control character \\{escape}, which FHIR strings may not "
            "contain (only tab, line feed and carriage return)",
        )
