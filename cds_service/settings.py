"""Service settings from the environment (pydantic-settings). Every setting is in the README."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    env: Literal["development", "production"] = Field("development", alias="CDS_ENV")
    host: str = Field("127.0.0.1", alias="HOST")
    port: int = Field(8000, alias="PORT", ge=1, le=65535)
    cards_dir: Path | None = Field(None, alias="CDS_CARDS_DIR")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", alias="CDS_LOG_LEVEL")
    # Audit log (cds_service/audit): SQLite under the data dir unless DATABASE_URL is set.
    data_dir: Path = Field(Path("data"), alias="CDS_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    audit_retention_days: int = Field(2190, alias="CDS_AUDIT_RETENTION_DAYS", ge=1)
