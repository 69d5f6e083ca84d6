"""The Da Vinci CRD `CRDMetricData` fields of one answered call (CRD `metrics.md`, metric-1),
read from the decision as it was sent: codes and ids only, never clinical values.

Recorded per call in the audit record (audit/record.py), counted in `/metrics`
(api/metrics.py), reported by `cds-service audit metrics` (audit/report.py).
"""

from __future__ import annotations

from typing import Any

from cds_service.core import COVERAGE_INFO_URL, Decision

# CRDMetricData.coverageInfo parts, by their ext-coverage-information sub-extension url
_CODED_PARTS = {
    "covered": "covered",
    "pa-needed": "paNeeded",
    "doc-needed": "docNeeded",
    "info-needed": "infoNeeded",
}
NO_PAYER = "none"  # no Coverage in force, or a payer none of the policies names
NO_ORDER = "no-order"  # the call's draft orders held no DLI / HPC boost order


def coverage_information(decision: Decision | None) -> dict[str, dict[str, Any]]:
    """Order reference -> its CRDMetricData coverageInfo (covered, paNeeded, docNeeded,
    infoNeeded, assertionId), from the coverage-information systemActions returned."""
    found: dict[str, dict[str, Any]] = {}
    for action in (decision.body.get("systemActions") or ()) if decision else ():
        resource = action.get("resource") or {}
        reference = f"{resource.get('resourceType')}/{resource.get('id')}"
        for extension in resource.get("extension") or ():
            if extension.get("url") == COVERAGE_INFO_URL:
                found[reference] = _coverage_parts(extension.get("extension") or ())
    return found


def _coverage_parts(parts: Any) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for part in parts:
        url = part.get("url")
        if url in _CODED_PARTS:
            key = _CODED_PARTS[url]
            code = part.get("valueCode")
            # doc-needed and info-needed may repeat (CRD 0..*); covered and pa-needed do not
            info[key] = [*info.get(key, []), code] if key in ("docNeeded", "infoNeeded") else code
        elif url == "coverage-assertion-id":
            info["assertionId"] = part.get("valueString")
    return info


def payer_of(decision: Decision | None) -> str:
    """The payer label of a call: the routed policy's id, `none` when no payer was recognised
    (every policy compared), `no-order` for a call without a DLI / HPC boost order."""
    if decision is None:
        return NO_ORDER
    return decision.route.policies[0].id if decision.route.recognised else NO_PAYER


def crd_version(crd_2_2: bool) -> str:
    """The CRD version the answer was written for (davinci-crd.requestedVersion)."""
    return "2.2" if crd_2_2 else "2.0.1"
