"""How large the FHIR resources of one call may be: codings per CodeableConcept, characters per
string, entries per Bundle, resources per call.

The cost of a call is in validating the resources the evaluation reads (fhir.resources, about
15 µs per coding): these limits keep one resource, one Bundle and one call within sane sizes.
They are checked as resources are read (core/record.py): every Bundle and every resource's
`code.coding` (what decides whether it is read at all), and the whole of every resource that is
read. A resource no fact reads is skipped unread, so what it holds deeper costs nothing and is
not checked. The numbers come from settings (api/limits.py); the defaults here are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class StructureLimits:
    codings: int = 100  # codings in one CodeableConcept
    string_chars: int = 1_048_576  # characters in one string (FHIR R4's own bound, 1 MB)
    bundle_entries: int = 10_000  # entries in one Bundle (a prefetch value or a fetched page)
    resources: int = 20_000  # resources in one call, prefetched and fetched together


_WHAT = {
    "codings": "codings in one CodeableConcept",
    "string_chars": "characters in one string",
    "bundle_entries": "entries in one Bundle",
    "resources": "resources in one call",
}


class TooLarge(Exception):
    """A structure over one of the StructureLimits: which limit, and where (a JSON path; never
    the value, which may be patient data)."""

    def __init__(self, limit: str, where: str, found: int, allowed: int) -> None:
        self.limit, self.where, self.found, self.allowed = limit, where, found, allowed
        super().__init__(f"{where} has {found} {_WHAT[limit]}; at most {allowed}")

    def within(self, prefix: str) -> TooLarge:
        """The same error, `where` read from an enclosing node at path `prefix`. (Paths are
        built only on failure: building one per resource read would cost on every call.)"""
        return TooLarge(self.limit, prefix + self.where, self.found, self.allowed)


def check_codings(codings: Any, limits: StructureLimits, where: str) -> None:
    if isinstance(codings, list) and len(codings) > limits.codings:
        raise TooLarge("codings", where, len(codings), limits.codings)


def check_entries(
    entries: list[Any], read_before: int, limits: StructureLimits, where: str
) -> None:
    """A Bundle's entries against the entry limit, and with the `read_before` resources of the
    call against the resource limit."""
    if len(entries) > limits.bundle_entries:
        raise TooLarge("bundle_entries", f"{where}.entry", len(entries), limits.bundle_entries)
    if read_before + len(entries) > limits.resources:
        raise TooLarge("resources", where, read_before + len(entries), limits.resources)


def check_resource(raw: dict[str, Any], limits: StructureLimits, where: str = "") -> None:
    """TooLarge if any CodeableConcept or string in `raw` is over its limit. Iterative and
    without paths (a resource is walked on every call that reads it, so this loop is the hot
    path: exact type tests, strings checked where they are met, only containers stacked); the
    path is found only for the one node that broke a limit."""
    max_codings, max_chars = limits.codings, limits.string_chars
    if _cannot_break(raw, max_codings, max_chars):
        return
    stack: list[Any] = [raw]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            codings = node.get("coding")
            if type(codings) is list and len(codings) > max_codings:
                raise TooLarge("codings", _path(raw, codings, where), len(codings), max_codings)
            children: Any = node.values()
        else:
            children = node
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append(child)
            elif kind is str and len(child) > max_chars:
                raise TooLarge("string_chars", _path(raw, child, where), len(child), max_chars)


def _cannot_break(raw: dict[str, Any], max_codings: int, max_chars: int) -> bool:
    """True when `raw` is too small to break either limit, so the walk can be skipped (most
    resources): a list of more than `max_codings` items has at least that many commas, and a
    string longer than `max_chars` makes the serialised resource longer still. Serialising
    and counting run in C, far cheaper than walking the nodes in Python."""
    try:
        blob = orjson.dumps(raw)
    except TypeError:  # not JSON-serialisable: walk it
        return False
    return len(blob) <= max_chars and blob.count(b",") < max_codings


def _path(node: Any, target: Any, where: str) -> str:
    """The JSON path of `target` (found by identity) inside `node`, `where` being node's path."""
    stack = [(node, where)]
    while stack:
        value, path = stack.pop()
        if value is target:
            return path
        if isinstance(value, dict):
            stack.extend((child, f"{path}.{key}") for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(value))
    return where
