"""Service settings from the environment (pydantic-settings). Every setting is in the README."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    env: Literal["development", "production"] = Field("development", alias="CDS_ENV")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    cards_dir: Path | None = Field(None, alias="CDS_CARDS_DIR")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="CDS_LOG_LEVEL")
    sandbox: bool | None = Field(None, alias="CDS_SANDBOX")  # None: on in development only

    # Connection limits of `cds-service serve` (README "Running behind a reverse proxy").
    header_timeout: float = Field(10.0, alias="CDS_HEADER_TIMEOUT", gt=0, le=300)
    keepalive_timeout: int = Field(5, alias="CDS_KEEPALIVE_TIMEOUT", ge=1, le=300)
    max_connections: int = Field(1000, alias="CDS_MAX_CONNECTIONS", ge=1)
    max_header_bytes: int = Field(16_384, alias="CDS_MAX_HEADER_BYTES", ge=1024)

    @property
    def sandbox_enabled(self) -> bool:
        return self.sandbox if self.sandbox is not None else self.env == "development"

    # Fetching what prefetch lacks from the EHR's FHIR server (README "Prefetch and fallback").
    # Empty allowlist: any http(s) fhirServer in development, none in production.
    fhir_allowed_servers: Annotated[tuple[str, ...], NoDecode] = Field(
        (), alias="CDS_FHIR_ALLOWED_SERVERS"
    )
    fhir_budget_seconds: float = Field(3.0, alias="CDS_FHIR_BUDGET_SECONDS", gt=0, le=4.5)
    fhir_query_timeout_seconds: float = Field(2.0, alias="CDS_FHIR_QUERY_TIMEOUT_SECONDS", gt=0)
    fhir_max_pages: int = Field(10, alias="CDS_FHIR_MAX_PAGES", ge=1, le=100)
    fhir_max_page_bytes: int = Field(5_000_000, alias="CDS_FHIR_MAX_PAGE_BYTES", ge=1024)

    @field_validator("fhir_allowed_servers", "operator_networks", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return value

    # Audit log (cds_service/audit): SQLite under the data dir unless DATABASE_URL is set.
    data_dir: Path = Field(Path("data"), alias="CDS_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    audit_retention_days: int = Field(2190, alias="CDS_AUDIT_RETENTION_DAYS", ge=1)
    # JWT jtis seen (api/replay.py); None: in the audit database when DATABASE_URL is set.
    replay_cache: Literal["memory", "database"] | None = Field(None, alias="CDS_REPLAY_CACHE")

    @property
    def replay_cache_backend(self) -> Literal["memory", "database"]:
        if self.replay_cache is not None:
            return self.replay_cache
        return "database" if self.database_url else "memory"

    # Client trust and input limits (README "Security").
    auth: bool | None = Field(None, alias="CDS_AUTH")  # None: on unless CDS_ENV=development
    issuers_file: Path | None = Field(None, alias="CDS_ISSUERS_FILE")
    issuers: str | None = Field(None, alias="CDS_ISSUERS")  # the issuers document, inline JSON
    public_base_url: str | None = Field(None, alias="CDS_PUBLIC_BASE_URL")
    cors_origins: Annotated[list[str], NoDecode] = Field([], alias="CDS_CORS_ORIGINS")
    # Who may read /metrics and /audit/assertions besides a verified CDS client (api/operator.py):
    # a scraper's bearer token, and / or the networks it calls from (CIDR, comma-separated).
    operator_token: str | None = Field(None, alias="CDS_OPERATOR_TOKEN", min_length=16)
    operator_networks: Annotated[tuple[str, ...], NoDecode] = Field(
        (), alias="CDS_OPERATOR_NETWORKS"
    )
    max_body_bytes: int = Field(10_000_000, alias="CDS_MAX_BODY_BYTES", ge=1024)
    body_timeout: float = Field(10.0, alias="CDS_BODY_TIMEOUT", gt=0)
    # What one call's FHIR resources may hold, in prefetch and in fetched pages (api/limits.py).
    max_codings: int = Field(100, alias="CDS_MAX_CODINGS", ge=1)
    max_string_chars: int = Field(1_048_576, alias="CDS_MAX_STRING_CHARS", ge=64)
    max_bundle_entries: int = Field(10_000, alias="CDS_MAX_BUNDLE_ENTRIES", ge=1)
    max_resources: int = Field(20_000, alias="CDS_MAX_RESOURCES", ge=1)
    # A call whose body is larger is answered in a worker process (api/offload.py); one larger
    # than the turn size, and not that large, waits its turn on the event loop (one at a time).
    large_call_bytes: int = Field(262_144, alias="CDS_LARGE_CALL_BYTES", ge=0)
    turn_call_bytes: int = Field(32_768, alias="CDS_TURN_CALL_BYTES", ge=0)
    large_call_workers: int = Field(1, alias="CDS_LARGE_CALL_WORKERS", ge=1, le=16)
    large_call_queue: int = Field(16, alias="CDS_LARGE_CALL_QUEUE", ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        return (
            [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value
        )

    @field_validator("operator_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as error:
                raise ValueError(f"CDS_OPERATOR_NETWORKS: {network!r} is not a CIDR") from error
        return value

    @property
    def auth_enabled(self) -> bool:
        return self.auth if self.auth is not None else self.env != "development"

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        """Production refuses settings that would send tokens in cleartext or open the service
        to any web page; each refusal names its setting."""
        if self.env != "production":
            return self
        if self.public_base_url is not None and not secure_url(self.public_base_url):
            raise ValueError(
                "CDS_ENV=production requires an https:// CDS_PUBLIC_BASE_URL "
                "(clients send their tokens there)"
            )
        if cleartext := [u for u in self.fhir_allowed_servers if not secure_url(u)]:
            raise ValueError(
                f"CDS_ENV=production requires https:// in CDS_FHIR_ALLOWED_SERVERS (EHR tokens "
                f"would travel in cleartext to {', '.join(cleartext)})"
            )
        if "null" in self.cors_origins:
            raise ValueError(
                "CDS_ENV=production refuses CDS_CORS_ORIGINS=null: sandboxed frames, file: pages"
                " and redirects all send Origin: null; list the SMART app origins"
            )
        if "*" in self.cors_origins:
            raise ValueError(
                "CDS_ENV=production refuses CDS_CORS_ORIGINS=*: list the SMART app origins"
            )
        if self.sandbox:
            raise ValueError(
                "CDS_ENV=production refuses CDS_SANDBOX=true: the sandbox hands out its FHIR "
                "token to anyone; run it in development only"
            )
        return self


def secure_url(url: str) -> bool:
    """https, or http to a loopback host (a test server or a sidecar on the same machine)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False
