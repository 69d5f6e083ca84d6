"""Value types shared by the pure core: evidence, facts, and the parsed patient record.

Nothing here performs I/O. A `Fact` is one clinical statement derived from FHIR, with the
resources it came from; `value is None` means the record does not settle it (unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

FactValue = str | float | bool | tuple[str, ...]


class Service(StrEnum):
    """The two orderable services this product evaluates."""

    DLI = "dli"
    HPC_BOOST = "hpc-boost"

    @property
    def label(self) -> str:
        return "Donor lymphocyte infusion" if self is Service.DLI else "HPC (stem cell) boost"

    @property
    def short(self) -> str:
        return "DLI" if self is Service.DLI else "HPC boost"


class Status(StrEnum):
    """Three-valued criterion status (plus not-applicable for branches that do not apply)."""

    MET = "met"
    NOT_MET = "not-met"
    UNKNOWN = "unknown"
    NOT_APPLICABLE = "not-applicable"


class Determination(StrEnum):
    MEETS = "meets-criteria"
    DOES_NOT_MEET = "does-not-meet-criteria"
    NEEDS_INFORMATION = "needs-information"
    NOT_ADDRESSED = "not-addressed"


@dataclass(frozen=True, slots=True)
class Evidence:
    """One resource that supports a fact: `reference` is `Type/id`, `summary` is for clinicians."""

    reference: str
    summary: str
    when: date | None = None


@dataclass(frozen=True, slots=True)
class Fact:
    value: FactValue | None
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    # Results at the same time that disagree (core/facts/latest.py): a line for the card.
    conflict: str = ""

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def basis(self) -> str:
        """Which of the three states the fact rests on (cards/README.md, "The evidence rule").

        The extractors say it in the note's first words ("documented present: ...",
        "documented absent: ...", "not documented: ..."); without such a note an unknown value
        is not documented, a value with evidence is documented present, and one without
        evidence rests on the documented absence the catalogue defines for the fact.
        """
        for state in ("documented present", "documented absent", "not documented"):
            if self.note.startswith(state):
                return state
        if self.value is None:
            return "not documented"
        return "documented present" if self.evidence else "documented absent"


UNKNOWN = Fact(None)


@dataclass(frozen=True, slots=True)
class ParseProblem:
    """A prefetch resource that could not be read; facts drawn from its type become unknown."""

    resource_type: str
    resource_id: str | None
    message: str
    codings: tuple[tuple[str, str], ...] = ()  # sniffed from the raw JSON, may be empty


@dataclass(slots=True)
class PatientRecord:
    """The FHIR resources of one patient, parsed (R4B models), plus what could not be read.

    `unavailable` names resource types for which the record is known to be incomplete: a
    resource of that type failed to parse, or its source (prefetch key / FHIR query) failed.
    Facts that rest on the *absence* or the *latest value* of that type are then unknown.
    """

    conditions: list[Any] = field(default_factory=list)
    procedures: list[Any] = field(default_factory=list)
    observations: list[Any] = field(default_factory=list)
    coverages: list[Any] = field(default_factory=list)
    # as JSON, validated when read (record.validated, through Context)
    medication_administrations: list[dict[str, Any]] = field(default_factory=list)
    medication_requests: list[dict[str, Any]] = field(default_factory=list)
    organizations: dict[str, Any] = field(default_factory=dict)
    # Completed worksheets (core/attestation.py reads the ones that answer our questionnaires)
    questionnaire_responses: list[Any] = field(default_factory=list)
    problems: list[ParseProblem] = field(default_factory=list)
    unavailable: set[str] = field(default_factory=set)
    resources_read: int = 0  # prefetched and fetched, held to StructureLimits.resources
    # The call's patient; a resource about another patient is not evidence: left out, and named
    # (Type/id) in `other_patient` for the log and the card. Empty: not checked.
    patient_id: str = ""
    other_patient: list[str] = field(default_factory=list)
    # Worksheet answers whose value has the wrong JSON type (not valid FHIR): left out of the
    # QuestionnaireResponse before it is read; (QuestionnaireResponse/<id>, linkId)
    mistyped_answers: list[tuple[str, str]] = field(default_factory=list)

    def complete(self, resource_type: str) -> bool:
        return resource_type not in self.unavailable


@dataclass(frozen=True, slots=True)
class Order:
    """A draft DLI / HPC boost order recognised in `context.draftOrders`."""

    reference: str  # "ServiceRequest/<id>"
    service: Service
    billing_code: str  # the CPT (or ICD-10-PCS) code that identified it
    billing_system: str
    authored_on: date | None
    details: frozenset[str]  # codes from ServiceRequest.orderDetail in our order-detail system
    resource: dict[str, Any]  # the draft ServiceRequest as received (echoed in systemActions)
    # (code, where the order states it: "Order detail", "Order detail text", "Order question")
    stated_in: tuple[tuple[str, str], ...] = ()

    def source_of(self, code: str) -> str:
        return next((where for c, where in self.stated_in if c == code), "Order detail")
