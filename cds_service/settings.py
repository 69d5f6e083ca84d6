"""Service settings from the environment (pydantic-settings). Every setting is in the README."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    env: Literal["development", "production"] = Field("development", alias="CDS_ENV")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    cards_dir: Path | None = Field(None, alias="CDS_CARDS_DIR")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="CDS_LOG_LEVEL")

    # Client trust and input limits (README "Security").
    auth: bool | None = Field(None, alias="CDS_AUTH")  # None: on unless CDS_ENV=development
    issuers_file: Path | None = Field(None, alias="CDS_ISSUERS_FILE")
    issuers: str | None = Field(None, alias="CDS_ISSUERS")  # the issuers document, inline JSON
    public_base_url: str | None = Field(None, alias="CDS_PUBLIC_BASE_URL")
    cors_origins: Annotated[list[str], NoDecode] = Field([], alias="CDS_CORS_ORIGINS")
    max_body_bytes: int = Field(10_000_000, alias="CDS_MAX_BODY_BYTES", ge=1024)
    body_timeout: float = Field(10.0, alias="CDS_BODY_TIMEOUT", gt=0)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return (
            [o.strip() for o in value.split(",") if o.strip()] if isinstance(value, str) else value
        )

    @property
    def auth_enabled(self) -> bool:
        return self.auth if self.auth is not None else self.env != "development"
