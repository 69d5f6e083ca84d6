"""The hot path's shortcuts give the answer of the plain rule they stand in front of, on any
input (property-based): a shortcut that is wrong on some record would change an answer."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cds_service.core.fhir_util import (
    about_another_patient,
    first_mistyped,
    mistyped_primitive,
    patient_of,
)
from cds_service.core.record import concept_codings

# Keys the mistyped-primitive rule treats specially, and some it does not.
KEYS = st.sampled_from([
    "value", "valueBoolean", "valueInteger", "valueDecimal", "valueQuantity", "dose", "low",
    "high", "numerator", "doseQuantity", "countPositiveInt", "sizeUnsignedInt", "_valueBoolean",
    "Boolean", "code", "text", "status", "item", "answer", "id", 'odd"Boolean',
])  # fmt: skip
PRIMITIVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["71", "true", "", "-1", 'Boolean":', '"value":"x'])
)
QUANTITY = st.sampled_from(["valueQuantity", "dose", "low", "high", "numerator"])
JSON = st.recursive(
    PRIMITIVES,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(KEYS, inner, max_size=4)
        | st.dictionaries(QUANTITY, st.fixed_dictionaries({"value": PRIMITIVES}), max_size=2)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, JSON, max_size=5))
@example({"valueQuantity": {"value": "71"}})
@example({"component": [{"dose": {"value": None}}]})
@example({"valueBoolean": "true", "id": "x"})
@example({"item": [{"answer": [{"countPositiveInt": 1.5}]}]})
def test_the_serialised_search_never_hides_a_mistyped_primitive(raw: dict[str, Any]) -> None:
    assert mistyped_primitive(raw) == first_mistyped(raw)


def _plain_rule(raw: dict[str, Any], patient_id: str) -> bool:
    other = patient_of(raw)
    return bool(patient_id) and other is not None and other != patient_id


REFERENCES = st.sampled_from([
    "Patient/p1", "Patient/p2", "Patient/p1/_history/2", "http://ehr/fhir/Patient/p1",
    "Patient/", "Group/p1", "#contained", "urn:uuid:1", "Patient/p1/",
])  # fmt: skip
SUBJECTS = st.none() | st.fixed_dictionaries({"reference": REFERENCES | st.integers()})


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {}, optional={"subject": SUBJECTS, "patient": SUBJECTS, "beneficiary": SUBJECTS}
    ),
    st.sampled_from(["p1", "p2", ""]),
)
def test_the_own_patient_shortcut_agrees_with_the_reference_reader(
    raw: dict[str, Any], patient_id: str
) -> None:
    assert about_another_patient(raw, patient_id) == _plain_rule(raw, patient_id)


def _all_codings(concept: Any) -> tuple[tuple[str, str], ...]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return tuple(
        (str(c.get("system")), str(c.get("code")))
        for c in (codings if isinstance(codings, list) else ())
        if isinstance(c, dict) and c.get("system") and c.get("code")
    )


CODING = st.fixed_dictionaries(
    {}, optional={"system": PRIMITIVES | st.just("http://loinc.org"), "code": PRIMITIVES}
)


@settings(max_examples=300, deadline=None)
@given(st.none() | st.fixed_dictionaries({"coding": st.lists(CODING | PRIMITIVES, max_size=3)}))
def test_the_one_coding_shortcut_reads_what_the_loop_reads(concept: Any) -> None:
    assert concept_codings(concept) == _all_codings(concept)
