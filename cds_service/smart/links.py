"""Where the cards send the clinician: the SMART app's launch URL on this service."""

from __future__ import annotations

from functools import cache

from cds_service.settings import Settings

LAUNCH_PATH = "/smart/launch"


@cache
def _launch_url(public_base_url: str | None, host: str, port: int) -> str:
    base = public_base_url or f"http://{host}:{port}"
    return base.rstrip("/") + LAUNCH_PATH


def launch_url(settings: Settings) -> str:
    """The absolute launch URL (CDS Hooks `smart` links are absolute): CDS_PUBLIC_BASE_URL, else
    the address the service listens on."""
    return _launch_url(settings.public_base_url, settings.host, settings.port)
