"""The closed-world audit (docs/closed-world-audit.md) agrees with the code and the policy files.

Per fact: the criteria that read it (cards/*.yaml), the positive evidence a documented presence
needs, and what counts as documented absence: the catalogue's own text (core/facts/__init__.py),
so the doc cannot drift from the code. Run `python -m tests.test_closed_world` to print the table.
"""

from __future__ import annotations

from pathlib import Path

from cds_service.core.facts import CATALOGUE
from cds_service.core.policy import Node
from cds_service.policy_store import load

DOC = Path(__file__).parent.parent / "docs" / "closed-world-audit.md"
HEADING = "# Closed-world audit: what can make a criterion not-met"

# What a documented presence needs, per fact: written here, next to the test that keeps the
# table complete, because it is the audit's own statement (the modules' docstrings say the same).
PRESENT = {
    "diagnosis_class": "the transplant's reason Condition, else a problem-list diagnosis, of that class",
    "indication_icd10cm": "an ICD-10-CM code on the indication",
    "hsct_type": "a completed transplant Procedure whose codes agree on the donor type",
    "t_cell_depleted_graft": "ICD-10-PCS substance U, SNOMED CT 234332000 / 234333005",
    "conditioning_intensity": "the intensity recorded on the transplant or a conditioning Procedure, or MAC inferred from a dosed regimen",
    "disease_status": "a relapse dated after the transplant, else the latest status by date (Condition code, clinicalStatus, mCODE Observation)",
    "donor_chimerism_pct": "the latest readable chimerism result after the transplant (same-day results agreeing)",
    "donor_chimerism_applicable": "a documented allogeneic transplant",
    "acute_gvhd_grade": "an active acute GVHD whose latest grading (stage summary or focused grade Observation) is readable",
    "acute_gvhd_active": "an active acute GVHD Condition",
    "chronic_gvhd_active": "an active chronic GVHD Condition",
    "poor_graft_function": "graft failure / rejection or pancytopenia coded, a lineage low over the persistence days, or repeated transfusions",
    "prior_car_t": "a CAR T Procedure or history code",
    "cytopenia_after_car_t": "the same evidence as poor graft function, dated after the latest CAR T",
    "current_substance_use": "an active substance-use Condition or a latest smoking status of current use",
    "nonadherence": "an active non-adherence Condition",
    "lacks_social_support": "an active support-system problem Condition",
    "uncontrolled_resistant_infection": "an active infection with a resistance code, or an active invasive mould infection",
    "product_source": "the order (code, readable text, order question) or the products' donors",
    "product_manipulation": "the order (code, readable text, order question)",
    "high_relapse_risk_attested": "the order detail high-relapse-risk",
    "other_high_risk_setting": "a high-risk attestation outside the settings the policy names (reviewer)",
}


def _criteria() -> dict[str, list[str]]:
    """fact -> 'criterion id (operator operand)' of every leaf that reads it."""
    found: dict[str, list[str]] = {name: [] for name in CATALOGUE}
    for policy in load().policies:
        for service in ("dli", "hpc-boost"):
            rule: Node | None = policy.rule(service)  # type: ignore[arg-type]
            for node in rule.walk() if rule is not None else ():
                if node.test is not None:
                    op = node.test.operator
                    operand = node.test.operand(op)
                    shown = ", ".join(map(str, operand)) if isinstance(operand, list) else operand
                    found[node.test.fact].append(f"`{node.id}` ({op} {shown})")
    return found


def table() -> str:
    rows = [
        "| Fact | Criteria that read it (test) | Documented present needs | Documented absent "
        "needs (anything less is unknown) |",
        "|---|---|---|---|",
    ]
    criteria = _criteria()
    for name, spec in CATALOGUE.items():
        read = "; ".join(sorted(set(criteria[name]))) or "(applicability only)"
        rows.append(f"| `{name}` | {read} | {PRESENT[name]} | {spec.absence} |")
    return "\n".join(rows)


def test_the_audit_table_in_policy_review_is_the_codes_own() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert HEADING in text
    assert table() in text, "regenerate: python -m tests.test_closed_world"


def test_every_fact_has_a_presence_statement() -> None:
    assert set(PRESENT) == set(CATALOGUE)


if __name__ == "__main__":
    import sys

    sys.stdout.write(table() + "\n")
