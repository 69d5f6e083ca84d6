"""Fetch and cache CDS clients' JWK Sets, and the jku lists some issuers publish, over HTTP.

Only URLs from the issuer allowlist reach this module (the verifier checks `jku` first, against
the issuer's own list or the list at its `jku_list_url`). Fetches have a timeout, no redirects
and a size cap; a set (a list) is cached per URL and fetched again when it is old or when a
token names a `kid` (a `jku`) it lacks (key rotation), at most once per `min_refetch`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jwt import PyJWK

from cds_service.api.issuers import public_keys


class JwksUnavailable(Exception):
    """The JWK Set could not be fetched or holds no usable key."""


@dataclass(frozen=True)
class _Entry:
    keys: dict[str, PyJWK]
    fetched: float


@dataclass(frozen=True)
class _Listed:
    urls: frozenset[str]
    fetched: float


def listed_urls(document: Any, depth: int = 3) -> set[str]:
    """The http(s) URLs in a published jku list. Its format is not publicly documented (Oracle
    Health says only "the list of JKUs"), so a JSON array of URLs, an object whose values hold
    them, or objects with a `jku` / `url` member are all read."""
    if depth == 0:
        return set()
    if isinstance(document, str):
        return {document} if document.startswith(("https://", "http://")) else set()
    if isinstance(document, list):
        return {u for item in document for u in listed_urls(item, depth - 1)}
    if isinstance(document, dict):
        return {u for value in document.values() for u in listed_urls(value, depth - 1)}
    return set()


class JwksCache:
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        max_age: float = 3600.0,
        min_refetch: float = 30.0,
        max_bytes: int = 256_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self._timeout = timeout
        self._max_age = max_age
        self._min_refetch = min_refetch
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lists: dict[str, _Listed] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key(self, url: str, kid: str) -> PyJWK | None:
        """The key `kid` from the set at `url`, or None when the set does not have it."""
        async with self._locks.setdefault(url, asyncio.Lock()):  # one fetch per URL at a time
            entry = self._entries.get(url)
            age = self._clock() - entry.fetched if entry else None
            if (
                entry is None
                or (age is not None and age > self._max_age)
                or (kid not in entry.keys and age is not None and age >= self._min_refetch)
            ):
                entry = _Entry(await self._fetch(url), self._clock())
                self._entries[url] = entry
        return entry.keys.get(kid)

    async def listed(self, list_url: str, jku: str) -> bool:
        """Whether the jku list published at `list_url` names `jku`."""
        async with self._locks.setdefault(list_url, asyncio.Lock()):
            entry = self._lists.get(list_url)
            age = self._clock() - entry.fetched if entry else None
            if (
                entry is None
                or (age is not None and age > self._max_age)
                or (jku not in entry.urls and age is not None and age >= self._min_refetch)
            ):
                urls = listed_urls(_json(await self._download(list_url)))
                if not urls:
                    raise JwksUnavailable("the jku list names no URL")
                entry = _Listed(frozenset(urls), self._clock())
                self._lists[list_url] = entry
        return jku in entry.urls

    async def _fetch(self, url: str) -> dict[str, PyJWK]:
        keys = public_keys(_json(await self._download(url)))
        if not keys:
            raise JwksUnavailable("no public signing key with a kid")
        return keys

    async def _download(self, url: str) -> bytes:
        try:
            async with (
                httpx.AsyncClient(transport=self._transport, timeout=self._timeout) as client,
                client.stream("GET", url, headers={"Accept": "application/json"}) as response,
            ):
                if response.status_code != 200:
                    raise JwksUnavailable(f"HTTP {response.status_code}")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self._max_bytes:
                        raise JwksUnavailable(f"larger than {self._max_bytes} bytes")
        except httpx.HTTPError as error:
            raise JwksUnavailable(type(error).__name__) from error
        return bytes(body)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise JwksUnavailable("not JSON") from error
