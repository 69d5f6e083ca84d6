"""Trusted CDS clients: the issuer allowlist (CDS Hooks 2.0 §trusting-cds-clients).

Each issuer (`iss`) names where its public keys come from: a JWKS URL, the `jku` header values it
may send (only these are ever fetched), a URL where it publishes that list of `jku` values
(`jku_list_url`, Oracle Health's way), or an inline JWK Set; the signature algorithms it may use
(asymmetric only); and the `aud` values it may send besides the URL invoked (`audiences`: Epic
sends whatever the health system typed in). Read from `CDS_ISSUERS_FILE` (YAML or JSON) and/or
`CDS_ISSUERS` (inline). Presets per EHR vendor are in the repository's `issuers/` folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jwt import PyJWK, PyJWTError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cds_service.settings import Settings

# CDS Hooks forbids `none` and symmetric (HS*) algorithms; ES384 and RS384 are recommended.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})
_URL = r"^https?://[^\s#]+$"


class ConfigError(Exception):
    """The service's trust configuration is unusable; the message says what to change."""


def public_keys(jwk_set: Any) -> dict[str, PyJWK]:
    """kid -> key for the usable public signing keys of a JWK Set. Keys without a `kid`, for
    encryption, or carrying private members are skipped: a private key must never be trusted
    from configuration or a URL."""
    keys = jwk_set.get("keys") if isinstance(jwk_set, dict) else None
    found: dict[str, PyJWK] = {}
    for jwk in keys if isinstance(keys, list) else ():
        if (
            not isinstance(jwk, dict)
            or not isinstance(jwk.get("kid"), str)
            or jwk.get("use", "sig") != "sig"
            or _PRIVATE_JWK_MEMBERS & set(jwk)
        ):
            continue
        try:
            found[jwk["kid"]] = PyJWK(jwk)
        except PyJWTError:
            continue
    return found


class Issuer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    iss: str = Field(min_length=1)
    jwks_url: str | None = Field(None, pattern=_URL)
    jku: tuple[str, ...] = ()  # allowed `jku` header values; a token's jku must be one of them
    # a URL publishing the allowed jku values (a JSON list of URLs, or an object holding one)
    jku_list_url: str | None = Field(None, pattern=_URL)
    audiences: tuple[str, ...] = ()  # accepted `aud` values besides the URL invoked
    jwks: dict[str, Any] | None = None  # inline public JWK Set
    algorithms: tuple[str, ...] = ("ES384", "RS384")

    @field_validator("jku", "audiences")
    @classmethod
    def _urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [u for u in value if not u.startswith(("https://", "http://"))]:
            raise ValueError(f"jku and audiences values must be http(s) URLs: {bad}")
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or set(value) - ASYMMETRIC_ALGORITHMS:
            raise ValueError(
                f"algorithms must be a non-empty subset of {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return value

    @model_validator(mode="after")
    def _has_keys(self) -> Issuer:
        if not (self.jwks_url or self.jku or self.jwks or self.jku_list_url):
            raise ValueError(f"issuer {self.iss!r} needs jwks_url, jku, jku_list_url or jwks")
        if self.jwks is not None and not public_keys(self.jwks):
            raise ValueError(f"issuer {self.iss!r}: jwks holds no public signing key with a kid")
        return self

    @property
    def inline_keys(self) -> dict[str, PyJWK]:
        return public_keys(self.jwks) if self.jwks else {}


class IssuersDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuers: list[Issuer]


def _parse(text: str, where: str) -> list[Issuer]:
    try:
        return IssuersDocument.model_validate(yaml.safe_load(text)).issuers
    except (yaml.YAMLError, ValidationError) as error:
        raise ConfigError(f"{where} is not a valid issuers document: {error}") from error


def load_issuers(settings: Settings) -> dict[str, Issuer]:
    """iss -> Issuer from CDS_ISSUERS_FILE and CDS_ISSUERS; an `iss` may appear only once."""
    issuers: list[Issuer] = []
    if settings.issuers_file is not None:
        path = Path(settings.issuers_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"CDS_ISSUERS_FILE {path} cannot be read: {error}") from error
        issuers += _parse(text, f"CDS_ISSUERS_FILE {path}")
    if settings.issuers:
        issuers += _parse(settings.issuers, "CDS_ISSUERS")
    by_iss: dict[str, Issuer] = {}
    for issuer in issuers:
        if issuer.iss in by_iss:
            raise ConfigError(f"issuer {issuer.iss!r} is configured twice")
        by_iss[issuer.iss] = issuer
    return by_iss
