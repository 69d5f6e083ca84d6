"""What every fact extractor reads: the record, the order, the as-of date and thresholds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from functools import cached_property
from typing import Any

from pydantic import AliasPath, BaseModel, ConfigDict, Field, model_validator

from cds_service.core.facts.transplant import Transplant, classify
from cds_service.core.fhir_util import (
    Coding,
    codings,
    condition_date,
    condition_valid,
    observation_date,
    procedure_date,
    procedure_done,
)
from cds_service.core.model import Order, PatientRecord
from cds_service.core.record import validated

CodingTest = Callable[[str, str], bool]
_OBS_OK = frozenset({"final", "amended", "corrected", "preliminary"})


def _from(section: str, key: str, **limits: Any) -> Any:
    """A field read from `section.key` of clinical_thresholds.yaml."""
    return Field(validation_alias=AliasPath(section, key), **limits)


class Thresholds(BaseModel):
    """The numbers in cds_service/data/clinical_thresholds.yaml (sources cited there), validated
    on loading; there are no defaults, so the file is their only copy."""

    model_config = ConfigDict(frozen=True, strict=True)

    anc_below: float = _from("cytopenia", "anc_below_10e9_per_l", gt=0)
    platelets_below: float = _from("cytopenia", "platelets_below_10e9_per_l", gt=0)
    hemoglobin_below: float = _from("cytopenia", "hemoglobin_below_g_per_dl", gt=0)
    persistence_days: int = _from("cytopenia", "persistence_days", gt=0)
    cytopenia_lookback_days: int = _from("cytopenia", "lookback_days", gt=0)
    min_transfusions: int = _from("transfusion_dependence", "min_transfusions", gt=0)
    transfusion_lookback_days: int = _from("transfusion_dependence", "lookback_days", gt=0)
    conditioning_max_days_before: int = _from("conditioning", "max_days_before_transplant", ge=0)
    busulfan_iv_mac_mg_per_kg: float = _from(
        "conditioning", "busulfan_iv_mac_total_mg_per_kg", gt=0
    )
    melphalan_mac_mg_per_m2: float = _from("conditioning", "melphalan_mac_total_mg_per_m2", gt=0)

    @model_validator(mode="before")
    @classmethod
    def _only_known_keys(cls, data: Any) -> Any:
        """A misspelt or new key in the file is an error, not a silently ignored number."""
        known = {tuple(f.validation_alias.path) for f in cls.model_fields.values()}  # type: ignore[union-attr]
        sections = data.items() if isinstance(data, dict) else ()
        given = {(s, k) for s, keys in sections for k in (keys if isinstance(keys, dict) else ())}
        if unknown := sorted(".".join(map(str, key)) for key in given - known):
            raise ValueError(f"unknown thresholds: {', '.join(unknown)}")
        return data


class Context:
    def __init__(
        self, record: PatientRecord, order: Order | None, as_of: date, thresholds: Thresholds
    ) -> None:
        self.record = record
        self.order = order
        self.as_of = as_of
        self.thresholds = thresholds

    # --- what may be missing --------------------------------------------------------------
    def unreadable(self, resource_type: str, relevant: CodingTest) -> str | None:
        """Why the record may lack a relevant `resource_type` resource, or None if it cannot.

        A source that failed taints the whole type; an unparseable resource taints it when its
        codes (sniffed from the raw JSON) are relevant or could not be read at all.
        """
        if not self.record.complete(resource_type):
            return f"{resource_type} data could not be retrieved"
        for problem in self.record.problems:
            if problem.resource_type == resource_type and (
                not problem.codings or any(relevant(s, c) for s, c in problem.codings)
            ):
                return f"{resource_type}/{problem.resource_id or '?'} could not be read"
        return None

    # --- resources on or before as_of -----------------------------------------------------
    # Every fact reads Procedures and Conditions through these two, so a Procedure that was
    # entered in error or not done, and a Condition refuted or entered in error, are ignored
    # everywhere (transplants, relapses, GVHD, infections, CAR T) by one rule.
    @cached_property
    def procedures(self) -> list[Any]:
        """Procedures that happened (completed / in progress), dated on/before as_of or undated."""
        return [
            p
            for p in self.record.procedures
            if procedure_done(p) and ((when := procedure_date(p)) is None or when <= self.as_of)
        ]

    @cached_property
    def valid_conditions(self) -> list[Any]:
        """Conditions not refuted / entered in error, whatever their date."""
        return [c for c in self.record.conditions if condition_valid(c)]

    def conditions(self, test: CodingTest) -> Iterator[tuple[Any, date | None, Coding]]:
        """Valid Conditions with a matching code, dated on/before as_of (or undated)."""
        for condition in self.valid_conditions:
            when = condition_date(condition)
            if when is not None and when > self.as_of:
                continue
            match = next(((s, c) for s, c in codings(condition.code) if test(s, c)), None)
            if match:
                yield condition, when, match

    def observations(
        self, test: CodingTest, newest_first: bool = False
    ) -> Iterator[tuple[Any, date | None, Coding]]:
        """Usable Observations with a matching code, dated on/before as_of (or undated).

        Each is validated only when the caller reaches it, so a caller that stops early (the
        newest few blood counts decide) leaves the rest unread; invalid ones are skipped and
        recorded as problems.
        """
        candidates = []
        for lazy in self.record.observations:
            # a missing status is invalid FHIR: validating it records the problem
            unusable = lazy.status is not None and lazy.status not in _OBS_OK
            if unusable or (lazy.when is not None and lazy.when > self.as_of):
                continue
            match = next(((s, c) for s, c in lazy.codings if test(s, c)), None)
            if match or not lazy.codings:
                candidates.append((lazy, match))
        if newest_first:
            candidates.sort(key=lambda item: item[0].when or date.min, reverse=True)
        for lazy, match in candidates:
            observation = lazy.model(self.record)
            if observation is None:
                continue
            if match is None:  # code could not be sniffed: test the validated one
                match = next(((s, c) for s, c in codings(observation.code) if test(s, c)), None)
                if match is None:
                    continue
            yield observation, observation_date(observation), match

    # --- the conditioning regimen (validated on first read) ------------------------------
    @cached_property
    def medication_administrations(self) -> list[Any]:
        return validated(self.record, self.record.medication_administrations)

    @cached_property
    def medication_requests(self) -> list[Any]:
        return validated(self.record, self.record.medication_requests)

    # --- transplants ----------------------------------------------------------------------
    @cached_property
    def transplants(self) -> list[Transplant]:
        return [t for p in self.procedures if (t := classify(p))]

    @cached_property
    def index_transplant(self) -> Transplant | None:
        """The latest allogeneic HSCT on/before as_of, else the latest HSCT of any type."""
        allo = [t for t in self.transplants if t.kind == "allogeneic"]
        pool = allo or self.transplants
        return max(pool, key=lambda t: t.when or date.min) if pool else None

    def after_transplant(self, when: date | None) -> bool:
        """Dated after the index transplant (true when the transplant date is unknown)."""
        index = self.index_transplant
        if index is None or index.when is None:
            return when is not None
        return when is not None and when > index.when

    def window_start(self, days: int) -> date:
        return self.as_of - timedelta(days=days)
