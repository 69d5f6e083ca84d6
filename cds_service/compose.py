"""Composition for development: the production app plus the browser sandbox when enabled.

`cds-service serve` and the tests that need the sandbox build the app here; the production
factory (`cds_service.api.app.create_app`) never imports the sandbox, scenarios or fixtures.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI

from cds_service.api.app import create_app
from cds_service.policy_store import Knowledge, load
from cds_service.settings import Settings


def create_dev_app(
    settings: Settings | None = None, knowledge: Knowledge | None = None, **options: Any
) -> FastAPI:
    """`create_app`, with the sandbox mounted when `settings.sandbox_enabled` (on in development)."""
    settings = settings or Settings()
    knowledge = knowledge or load(settings.cards_dir)
    app = create_app(settings, knowledge, **options)
    if settings.sandbox_enabled:
        from cds_service.sandbox import SandboxFhir, mount_sandbox

        # The sandbox's no-prefetch mode reads the fixture FHIR server this app hosts itself.
        mount_sandbox(app, knowledge, SandboxFhir(token=secrets.token_urlsafe(16)))
        app.state.sandbox_path = "/sandbox"  # GET / points to it
    return app
