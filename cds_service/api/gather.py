"""The patient record for one hook call: prefetch first, the EHR's FHIR server for the rest.

Per required prefetch key (CDS Hooks 2.0 §prefetch, §fhir-resource-access; CRD found-32/34):
a value → use it; `null` → the EHR has no such data, never re-queried; absent, or an
OperationOutcome (or a Bundle carrying one) → query `fhirServer` with the hook's bearer token.
All queries run at once, each page with its own timeout, all under one budget; Bundle `next`
links are followed (only within `fhirServer`) up to a page limit. A key the server could not
supply marks its resource type unavailable, so the facts resting on it become unknown, and is
reported so the cards can say so. 412 only when nothing usable could be had at all.

The payer: when the Coverage names it only as `Organization/{id}` and neither prefetch (through
`_include=Coverage:payor`) nor the Coverage itself holds it, `Organization/{id}` is read from
`fhirServer` the same way (same client, token, redirect and failure rules, within what is left of
the budget). Failing that, the payer is unrecognised and every policy is compared, saying why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import re
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from cds_service.api.allowlist import within
from cds_service.api.discovery import (
    OPTIONAL_PREFETCH,
    PREFETCH,
    REQUIRED_PREFETCH,
    UNREPORTED_OPTIONAL,
)
from cds_service.api.errors import HookError
from cds_service.api.hooks import ParsedHook
from cds_service.api.limits import GatherLimits, too_large
from cds_service.core import (
    Keep,
    PatientRecord,
    Policy,
    StructureLimits,
    TooLarge,
    add_prefetch_value,
    is_operation_outcome,
    payer_organizations_to_read,
    prefetch_value_steps,
)

log = logging.getLogger("cds_service.gather")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

PAYER_KEY = "payer"  # the Organization read for an unresolved payor reference
# How long reading prefetch works before it lets other calls on the event loop run.
_SLICE_S = 0.001
# What each fetched key carries, for the "could not be retrieved" notes.
FETCHED_TYPES: dict[str, str] = {
    **REQUIRED_PREFETCH,
    **OPTIONAL_PREFETCH,
    PAYER_KEY: "Organization",
}


@dataclass
class KeyFetch:
    """One prefetch key fetched from the server: the pages read, and what went wrong (if)."""

    key: str
    url: str
    pages: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None
    expect: str = "Bundle"  # a search answers a Bundle; a read, the resource itself


@dataclass(frozen=True)
class Gathered:
    record: PatientRecord
    unretrieved: dict[str, str]  # prefetch key -> why the server could not (fully) supply it
    fetched: tuple[str, ...] = ()  # prefetch keys queried from fhirServer

    @property
    def source(self) -> str:
        """Where the record came from, for the audit log: prefetch, fetched or mixed."""
        if not self.fetched:
            return "prefetch"
        return "fetched" if len(self.fetched) == len(REQUIRED_PREFETCH) else "mixed"


def missing_keys(prefetch: dict[str, Any], keys: Any = REQUIRED_PREFETCH) -> list[str]:
    """Keys (required by default) the client did not satisfy: absent, or an OperationOutcome."""
    return [k for k in keys if k not in prefetch or is_operation_outcome(prefetch[k])]


def query_url(fhir_server: str, key: str, patient_id: str) -> str:
    # patientId is validated against the FHIR id pattern, so it is safe in a URL as is.
    query = PREFETCH[key].replace("{{context.patientId}}", patient_id)
    return f"{fhir_server.rstrip('/')}/{query}"


def _next_link(bundle: dict[str, Any]) -> str | None:
    links = bundle.get("link")
    for link in links if isinstance(links, list) else ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


_PIECE = 65_536  # most bytes one step of decompression may produce


def _decoder(encoding: str) -> Callable[[bytes], Iterator[bytes]] | None:
    """A decoder of a `Content-Encoding` that yields at most _PIECE bytes at a time (httpx's
    own decodes a whole network chunk at once: a few kB of gzip can become gigabytes before
    any cap sees them); None for an encoding not asked for."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return lambda data: iter((data,)) if data else iter(())
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return None
    inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)  # gzip or zlib header, detected

    def pieces(data: bytes) -> Iterator[bytes]:
        piece = inflate.decompress(data, _PIECE)
        while piece:
            yield piece
            piece = inflate.decompress(inflate.unconsumed_tail, _PIECE)

    return pieces


async def _read_body(client: httpx.AsyncClient, url: str, cap: int) -> bytes:
    """The body of a 200 answer to GET `url`, streamed: reading stops as soon as it passes
    `cap` bytes, counted both as sent (compressed) and decoded, a bounded piece at a time, so an
    oversized page (or a small one that inflates) never sits in memory whole."""
    too_large = f"answered a page larger than {cap} bytes (CDS_FHIR_MAX_PAGE_BYTES)"
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise ValueError(f"answered HTTP {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise ValueError(too_large)
        decode = _decoder(response.headers.get("content-encoding", ""))
        if decode is None:
            raise ValueError("answered in a content-encoding it was not asked for")
        chunks, sent, size = [], 0, 0
        try:
            # the raw stream itself: aiter_raw() refuses a body a transport handed over whole
            stream = response.stream
            if not isinstance(stream, httpx.AsyncByteStream):
                raise ValueError("answered with a body that could not be read")
            async for raw in stream:
                sent += len(raw)
                if sent > cap:
                    raise ValueError(too_large)
                for piece in decode(raw):
                    size += len(piece)
                    if size > cap:
                        raise ValueError(too_large)
                    chunks.append(piece)
        except zlib.error:
            raise ValueError("answered with a body that could not be decompressed") from None
        return b"".join(chunks)


async def _read_page(
    client: httpx.AsyncClient, url: str, limits: GatherLimits, expect: str = "Bundle"
) -> dict[str, Any]:
    """One searchset page (or read resource of type `expect`); any failure is a ValueError whose
    message holds no patient data."""
    try:
        async with asyncio.timeout(limits.query_timeout):
            raw = await _read_body(client, url, limits.page_bytes)
    except (TimeoutError, httpx.TimeoutException):
        raise ValueError(f"no answer within {limits.query_timeout:g} s") from None
    except httpx.HTTPError as error:
        raise ValueError(f"could not be reached ({type(error).__name__})") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValueError("answered with something that is not JSON") from None
    if not isinstance(body, dict) or body.get("resourceType") not in (expect, "OperationOutcome"):
        raise ValueError(f"answered with something that is not a FHIR {expect}")
    if is_operation_outcome(body):
        raise ValueError("answered with an OperationOutcome")
    return body


async def _fetch(client: httpx.AsyncClient, base: str, job: KeyFetch, limits: GatherLimits) -> None:
    """Read every page of `job.url` into `job.pages`; a failure is noted in `job.problem`.

    Pages already read are kept when a later one fails: what they hold is still true, and
    the key is marked unavailable so that nothing is concluded from what they lack.
    """
    url: str | None = job.url
    while url is not None:
        try:
            page = await _read_page(client, url, limits, job.expect)
        except ValueError as error:
            where = f" (page {len(job.pages) + 1})" if job.pages else ""
            job.problem = f"the EHR's FHIR server {error}{where}"
            return
        job.pages.append(page)
        url = _next_link(page) if job.expect == "Bundle" else None
        if url is not None and not within(base, url):
            job.problem = "the EHR's FHIR server linked its next page outside fhirServer"
            return
        if url is not None and len(job.pages) >= limits.max_pages:
            job.problem = f"the result has more than {limits.max_pages} pages"
            return


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for the process: building one costs tens of milliseconds."""
    return ssl.create_default_context()


async def fetch_all(
    fhir_server: str,
    token: str,
    jobs: list[KeyFetch],
    limits: GatherLimits,
    transport: httpx.AsyncBaseTransport | None,
) -> None:
    """Run every job concurrently; whatever is unfinished when the budget runs out is cancelled."""
    async with httpx.AsyncClient(
        transport=transport,
        verify=_tls() if transport is None else True,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/fhir+json",
            "Accept-Encoding": "gzip, deflate",  # what _read_body decodes, a bounded piece at a time
        },
        follow_redirects=False,  # a redirect could lead off the allowlist, token and all
        trust_env=False,  # no proxies or .netrc credentials from the environment
        timeout=limits.query_timeout,
    ) as client:
        tasks = [asyncio.create_task(_fetch(client, fhir_server, j, limits)) for j in jobs]
        _, late = await asyncio.wait(tasks, timeout=limits.budget)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    for job, task in zip(jobs, tasks, strict=True):
        if task in late:
            job.problem = (
                f"the EHR's FHIR server did not finish within the {limits.budget:g} s budget"
            )


# The prefetch keys not satisfied: (required, optional), each absent or an OperationOutcome.
Missing = tuple[list[str], list[str]]


def from_prefetch(
    parsed: ParsedHook, keep: Keep | None, limits: StructureLimits
) -> tuple[PatientRecord, Missing]:
    """The record from prefetch alone, and the keys it lacks. HookError(413) naming the limit
    and where when a prefetched structure is over one."""
    record, missing, steps = _prefetch_steps(parsed, keep, limits)
    for _ in steps:
        pass
    return record, missing


async def _from_prefetch_sharing_the_loop(
    parsed: ParsedHook, keep: Keep | None, limits: StructureLimits
) -> tuple[PatientRecord, Missing]:
    """`from_prefetch`, handing the event loop back after every `_SLICE_S` of work: validating
    a large record costs many ms, which other calls would otherwise wait for in one piece."""
    record, missing, steps = _prefetch_steps(parsed, keep, limits)
    mark = time.perf_counter()
    for _ in steps:
        if time.perf_counter() - mark > _SLICE_S:
            await asyncio.sleep(0)
            mark = time.perf_counter()
    return record, missing


def _prefetch_steps(
    parsed: ParsedHook, keep: Keep | None, limits: StructureLimits
) -> tuple[PatientRecord, Missing, Iterator[None]]:
    """The record to fill, the keys missing, and the filling, one resource a step."""
    prefetch = parsed.request.prefetch or {}
    missing = (missing_keys(prefetch), missing_keys(prefetch, OPTIONAL_PREFETCH))
    record = PatientRecord(patient_id=parsed.context.patientId)
    skipped = {*missing[0], *missing[1]}

    def steps() -> Iterator[None]:
        try:
            for key, resource_type in (*REQUIRED_PREFETCH.items(), *OPTIONAL_PREFETCH.items()):
                if key not in skipped:
                    yield from prefetch_value_steps(
                        record, prefetch[key], resource_type, keep, limits, f"prefetch.{key}"
                    )
        except TooLarge as error:
            raise HookError(413, too_large(error)) from None

    return record, missing, steps()


def _add_pages(
    record: PatientRecord,
    job: KeyFetch,
    resource_type: str,
    keep: Keep | None,
    limits: GatherLimits,
) -> None:
    """Add the pages read for `job`. A page over a structural limit fails the key as a 5xx
    would: what came before it stays, nothing after it is read, and `job.problem` says why."""
    for number, page in enumerate(job.pages, 1):
        try:
            add_prefetch_value(record, page, resource_type, keep, limits.structure, resource_type)
        except TooLarge as error:
            job.problem = (
                f"the EHR's FHIR server answered over a limit (page {number}): {too_large(error)}"
            )
            return


async def gather(
    parsed: ParsedHook,
    limits: GatherLimits,
    transport: httpx.AsyncBaseTransport | None = None,
    keep: Keep | None = None,
    policies: tuple[Policy, ...] = (),
) -> Gathered:
    """The record from prefetch plus, for the missing keys, from `fhirServer` (see module doc);
    then the payer's Organization when only the server has it and `policies` are given.

    Raises HookError(412) when required data can be had neither from prefetch nor the server.
    """
    started = time.perf_counter()
    record, missing = await _from_prefetch_sharing_the_loop(parsed, keep, limits.structure)
    unretrieved = await _fetch_missing(parsed, record, missing, limits, transport, keep)
    payers = payer_organizations_to_read(record, policies) if policies else ()
    request = parsed.request
    if payers and request.fhirServer is not None and request.fhirAuthorization is not None:
        left = limits.budget - (time.perf_counter() - started)
        limits = dataclasses.replace(limits, budget=left)
        where = (request.fhirServer, request.fhirAuthorization.access_token)
        problem = await _read_payers(
            where, str(request.hookInstance), record, payers, limits, transport
        )
        if problem is not None:
            unretrieved[PAYER_KEY] = problem
    return Gathered(record, unretrieved, tuple(missing[0]))


async def _read_payers(
    where: tuple[str, str],
    hook_instance: str,
    record: PatientRecord,
    payers: tuple[str, ...],
    limits: GatherLimits,
    transport: httpx.AsyncBaseTransport | None,
) -> str | None:
    """Read `Organization/{id}` for each payor id from `where` (fhirServer, token) into the
    record, within `limits.budget` (what the call has left); the first problem, if any."""
    server, token = where
    if limits.budget <= 0:
        return "the EHR's FHIR server did not finish within the fetch budget"
    base = server.rstrip("/")
    # Payor ids come from the Coverage: only FHIR ids (no '/', '?', '#') are put in a URL.
    jobs = [
        KeyFetch(PAYER_KEY, f"{base}/Organization/{i}", expect="Organization")
        for i in payers
        if _FHIR_ID.fullmatch(i)
    ]
    if not jobs:
        return None
    await fetch_all(server, token, jobs, limits, transport)
    log.info(
        "fhir payer read hookInstance=%s organizations=%d ok=%d",
        hook_instance,
        len(jobs),
        sum(j.problem is None for j in jobs),
    )
    for job in jobs:
        _add_pages(record, job, "Organization", None, limits)
    return next((j.problem for j in jobs if j.problem is not None), None)


async def _fetch_missing(
    parsed: ParsedHook,
    record: PatientRecord,
    keys: Missing,
    limits: GatherLimits,
    transport: httpx.AsyncBaseTransport | None,
    keep: Keep | None,
) -> dict[str, str]:
    """Fetch the missing (required, optional) keys into `record`; key -> why it could not be
    (fully) had. Optional keys are fetched only from a server the call names: without one they
    are skipped (they are never worth a 412), and only required keys can make the call fail."""
    request = parsed.request
    missing, optional = keys
    no_server = request.fhirServer is None or request.fhirAuthorization is None
    if not missing and (not optional or no_server):
        return {}
    if request.fhirServer is None or request.fhirAuthorization is None:
        lacking = "fhirServer" if request.fhirServer is None else "fhirAuthorization"
        raise HookError(
            412,
            f"required prefetch not provided and no {lacking} to query it with: "
            + ", ".join(f"{k} ({PREFETCH[k]})" for k in missing),
        )
    jobs = [
        KeyFetch(k, query_url(request.fhirServer, k, parsed.context.patientId))
        for k in missing + optional
    ]
    started = time.perf_counter()
    await fetch_all(
        request.fhirServer,
        request.fhirAuthorization.access_token,
        jobs,
        limits,
        transport,
    )
    log.info(
        "fhir fetch hookInstance=%s patient=%s %s ms=%.1f",
        request.hookInstance,
        parsed.context.patientId,
        " ".join(
            f"{j.key}={'ok' if j.problem is None else 'failed'}/{len(j.pages)}p" for j in jobs
        ),
        (time.perf_counter() - started) * 1000,
    )
    required = [j for j in jobs if j.key in REQUIRED_PREFETCH]
    if len(missing) == len(REQUIRED_PREFETCH) and not any(j.pages for j in required):
        raise HookError(
            412,
            "required prefetch not provided and the EHR's FHIR server supplied none of it: "
            + "; ".join(f"{j.key}: {j.problem}" for j in required),
        )
    return _add_fetched(record, jobs, keep, limits)


def _add_fetched(
    record: PatientRecord, jobs: list[KeyFetch], keep: Keep | None, limits: GatherLimits
) -> dict[str, str]:
    """The fetched pages into `record`; key -> why it could not be (fully) had."""
    unretrieved = {}
    for job in jobs:
        if job.key in UNREPORTED_OPTIONAL and job.problem is not None:
            continue  # no worksheet answers is not a gap in the record: the card just lacks them
        resource_type = FETCHED_TYPES[job.key]
        _add_pages(record, job, resource_type, keep, limits)
        if job.problem is not None:
            record.unavailable.add(resource_type)
            unretrieved[job.key] = job.problem
    return unretrieved
