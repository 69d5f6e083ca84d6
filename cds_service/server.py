"""The HTTP server `cds-service serve` runs: uvicorn, with the connection limits it lacks.

uvicorn closes a kept-alive connection after `timeout_keep_alive`, but it never times out a
connection that has not sent (all of) its request headers, and it accepts connections until the
process runs out of file descriptors. `GuardedH11` adds both: a deadline from the connection's
start (and from each keep-alive request's first byte) to its complete request head, and a cap
on open connections (one over the cap is closed at once, before it holds a file descriptor for
long), and a bound on the request head however it arrives: h11's `max_incomplete_event_size`
only counts a head still incomplete, so a 120 kB head sent in one write passed it.
Errors that repeat (the accept loop out of descriptors, malformed requests) are logged once per
interval with a count.

Several workers (`cds-service serve --workers N`): uvicorn starts each worker as a fresh
process (spawn) and builds its app there with `worker_app`, which installs the same JSON
logging, repeat filter and protocol limits as a single process; the connection cap is shared
out (each worker holds its part of CDS_MAX_CONNECTIONS), and each worker takes its own audit
spool file (audit/spool.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cds_service.settings import Settings

REPEAT_INTERVAL_S = 10.0


WORKERS_ENV = "CDS_SERVE_WORKERS"  # set by `serve --workers N` for the worker processes
_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/fhir+json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_HEAD_OUTCOME = (
    b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"too-costly",'
    b'"diagnostics":"the request head is larger than CDS_MAX_HEADER_BYTES"}]}'
)


class GuardedH11(H11Protocol):
    header_timeout: float = 10.0
    max_connections: int = 1000
    max_header_bytes: int = 16_384

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_seen = 0  # bytes of the current request head received so far
        if len(self.connections) > self.max_connections:
            transport.abort()  # over the cap: shed at once, before it ties up a descriptor
            return
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:
        # Between requests uvicorn's keep-alive timer runs; a new request's first byte cancels
        # it, and from then its head is on this deadline.
        if self.conn.their_state is h11.IDLE and self._head_over_limit(data):
            self.transport.write(_HEAD_TOO_LARGE % (len(_HEAD_OUTCOME), _HEAD_OUTCOME))
            self.transport.close()
            return
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:  # still waiting for (the rest of) a request head
            if self._head_deadline is None:
                self._arm_head_deadline()
        elif self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_over_limit(self, data: bytes) -> bool:
        """Whether the request head, counted up to its blank line however many writes carry
        it, is over `max_header_bytes`."""
        end = data.find(b"\r\n\r\n")
        seen = self._head_seen + (len(data) if end < 0 else end + 4)
        self._head_seen = seen if end < 0 else 0
        return seen > self.max_header_bytes

    def connection_lost(self, exc: Exception | None) -> None:
        if getattr(self, "_head_deadline", None) is not None:
            self._head_deadline.cancel()  # type: ignore[union-attr]
        super().connection_lost(exc)

    def _arm_head_deadline(self) -> None:
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class RepeatFilter(logging.Filter):
    """Lets the first of a repeating message through, then one per interval with the count of
    those held back (the accept loop can otherwise write thousands of lines a second)."""

    def __init__(self, interval: float = REPEAT_INTERVAL_S) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        last, held = self._last.get(key, (float("-inf"), 0))
        if now - last < self.interval:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {self.interval:g} s)"
        return True


def guarded_protocol(settings: Settings) -> type[GuardedH11]:
    return type(
        "GuardedH11",
        (GuardedH11,),
        {
            "header_timeout": settings.header_timeout,
            "max_connections": settings.max_connections,
            "max_header_bytes": settings.max_header_bytes,
        },
    )


def uvicorn_options(settings: Settings, workers: int = 1) -> dict[str, Any]:
    """The server's limits from the settings (README "Running behind a reverse proxy"). With
    several workers each holds its share of the connection cap, and the protocol class is
    named by import path (a worker process builds it, `worker_app`)."""
    share = max(1, settings.max_connections // workers)
    return {
        "http": guarded_protocol(settings) if workers == 1 else "cds_service.server:GuardedH11",
        "timeout_keep_alive": settings.keepalive_timeout,
        # uvicorn counts open connections (idle ones too) with tasks: at the cap it answers 503
        "limit_concurrency": share,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "backlog": 1024,
    }


def worker_app() -> Any:
    """One worker of `serve --workers N` (uvicorn's app factory, run in the worker process):
    the same logging and limits `serve` sets up in a single process."""
    from cds_service.compose import create_dev_app
    from cds_service.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    quiet_repeats()
    workers = int(os.environ.get(WORKERS_ENV, "1"))
    GuardedH11.header_timeout = settings.header_timeout
    GuardedH11.max_connections = max(1, settings.max_connections // workers)
    GuardedH11.max_header_bytes = settings.max_header_bytes
    return create_dev_app(settings)


def quiet_repeats() -> None:
    """Install the repeat filter on the loggers the accept loop and the protocol write to."""
    repeat = RepeatFilter()
    for name in ("asyncio", "uvicorn.error"):
        logging.getLogger(name).addFilter(repeat)
