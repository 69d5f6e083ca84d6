"""CDS Hooks 2.0 feedback body (§feedback; 3.0 invariants cds-fb-1..3), validated with pydantic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator


class Coding(BaseModel):
    model_config = ConfigDict(extra="ignore")
    system: str = Field(min_length=1, max_length=256)
    code: str = Field(min_length=1, max_length=64)
    display: str | None = Field(None, max_length=256)


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reason: Coding | None = None
    userComment: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _reason_or_comment(self) -> OverrideReason:  # cds-fb-3
        if self.reason is None and not self.userComment:
            raise ValueError("overrideReason needs a reason or a userComment")
        return self


class AcceptedSuggestion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128)


class FeedbackItem(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `extension` and later fields are ignored
    card: str = Field(min_length=1, max_length=128)
    outcome: Literal["accepted", "overridden"]  # cds-fb-1
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: AwareDatetime

    @field_validator("outcomeTimestamp", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("outcomeTimestamp must be an RFC 3339 date-time string")
        return value

    @field_validator("outcomeTimestamp", mode="after")
    @classmethod
    def _storable(cls, value: datetime) -> datetime:
        """In UTC too (as stored): 9999-12-31T23:00:00-05:00 is a valid RFC 3339 text whose UTC
        time is past year 9999; storing it failed as if the storage were down (503)."""
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("outcomeTimestamp is out of range in UTC") from None
        return value

    @model_validator(mode="after")
    def _accepted_names_suggestions(self) -> FeedbackItem:  # cds-fb-2
        if self.outcome == "accepted" and not self.acceptedSuggestions:
            raise ValueError("acceptedSuggestions is required when outcome is 'accepted'")
        return self


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=100)
