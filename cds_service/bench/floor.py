"""The floor: the cheapest FastAPI endpoint that still receives and parses the same request
and answers a fixed card, served the same way as the real app. Every figure is compared to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request, Response
from starlette.background import BackgroundTask

from cds_service.api.heap import settle_heap

_CARD = orjson.dumps({"cards": [{
    "uuid": "00000000-0000-4000-8000-000000000000", "summary": "Fixed card", "indicator": "info",
    "source": {"label": "floor"},
}]})  # fmt: skip


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    settle_heap()  # as the real app does (api/app.py): the same collector settings for both
    yield


async def _release(_: object) -> None:
    """Holds the parsed body until the answer is sent, as the real app holds its request's
    objects: both free them after answering."""


def create_floor_app() -> FastAPI:
    app = FastAPI(lifespan=_lifespan)

    @app.post("/cds-services/{service_id}")
    async def answer(service_id: str, request: Request) -> Response:
        parsed = orjson.loads(await request.body())
        background = BackgroundTask(_release, parsed)
        return Response(_CARD, media_type="application/json", background=background)

    return app
