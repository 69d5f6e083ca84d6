"""Structured logs: one JSON object per line, built so patient data cannot reach them.

The service's own loggers (`cds_service.*`) log ids, outcomes and timings as `extra={"fields":
{...}}`. Everything else (uvicorn, starlette, httpx) is rendered as its message template only,
without arguments, and an exception only as its type and where it was raised, never its
message: those are the places a request body or token could otherwise be echoed. The few
server-lifecycle templates below carry only a process id, an address or a dialect name, so they are
rendered whole.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from datetime import UTC, datetime
from typing import Any

# (logger, template) pairs whose arguments are the server's own, never a request's.
_LIFECYCLE = frozenset(
    {
        ("uvicorn.error", "Started server process [%d]"),
        ("uvicorn.error", "Finished server process [%d]"),
        ("uvicorn.error", "Uvicorn running on %s://%s:%d (Press CTRL+C to quit)"),
        ("alembic.runtime.migration", "Context impl %s."),
        ("alembic.runtime.migration", "Will assume %s DDL."),
        # the migration step ("upgrade 0003 -> 0004, <its docstring's first line>"): ours
        ("alembic.runtime.migration", "Running %s"),
    }
)


MAX_LINE_CHARS = 16_384  # a line over this keeps its event and says how long it was
MAX_IDS = 20  # ids named per field; the count says how many there were
_FHIR_ID = re.compile(r"[A-Za-z]{1,64}/[A-Za-z0-9\-.]{1,64}")


def safe_ids(references: list[str]) -> list[str]:
    """`Type/id` references for a log line: the first MAX_IDS, each only if it has the form of
    a FHIR reference (an id is client text: anything else in it could be patient data)."""
    return [r if _FHIR_ID.fullmatch(r) else "(not a FHIR id)" for r in references[:MAX_IDS]]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == "cds_service" or record.name.startswith("cds_service.")
        rendered = ours or (record.name, record.msg) in _LIFECYCLE
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage() if rendered else str(record.msg),
        }
        if ours:
            entry.update(getattr(record, "fields", {}))
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:
                entry["at"] = f"{frames[-1].filename}:{frames[-1].lineno}"
        line = json.dumps(entry, default=str)
        if len(line) <= MAX_LINE_CHARS:
            return line
        kept = {k: entry[k] for k in ("time", "level", "logger")}
        kept["event"] = str(entry["event"])[:200]
        return json.dumps({**kept, "truncated": True, "chars": len(line)})


def configure_logging(level: str) -> None:
    """Route every logger, uvicorn's included, to one JSON handler on stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
