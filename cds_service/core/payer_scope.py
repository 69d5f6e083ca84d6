"""Which calls a primary CRD hook answers: only for a Coverage whose payer has a policy here.

CRD 2.1+ hook-13 (HL7/davinci-crd hooks.md at 2.2.1): a call whose primary Coverage has no payer
this CRD server handles ("no Coverage is accessible, multiple Coverages are accessible, or the
provided Coverage does not have a payer.identifier at all") SHALL get 400, SHOULD with an
OperationOutcome. CRD 2.0.1 says primary hooks "SHALL, at minimum, return a Coverage Information
system action", whose `coverage` is 1..1: without a handled Coverage there is none to give, and
Inferno's crd_service_response_validation (a CRD 2.0.1 tester) fails any 200 order-sign answer
without `systemActions`. So both versions get the same 400. The policy comparison for an
unknown payer stays on order-select, a supporting hook with no coverage information.
"""

from __future__ import annotations

from cds_service.core.payer import Route

# The primary CRD hooks this service provides (CRD hooks.md "Hook categories"): each answers with
# coverage information, so each refuses a payer it does not handle.
PRIMARY_HOOKS = ("order-sign", "appointment-book", "order-dispatch")


def unhandled_payer(hook: str, routed: Route, coverages: int, coverage_fetch: str = "") -> str:
    """Why a primary-hook call cannot be answered ("" when it can): the diagnostics of its 400.
    `coverages` counts the Coverages read; `coverage_fetch` says why they could not be fetched."""
    if hook not in PRIMARY_HOOKS or (routed.coverage is not None and routed.coverage.id):
        return ""
    if coverage_fetch:
        why = f"the Coverage or its payer could not be read from the EHR ({coverage_fetch})"
    elif routed.coverage is not None:
        why = "the Coverage of the recognised payer has no id to refer to"
    elif coverages == 0:
        why = "the call carries no Coverage (prefetch `coverage` empty or null)"
    else:
        why = (
            f"none of the {coverages} Coverage(s) in force names a payer whose policy this "
            "service holds"
        )
    return (
        f"{hook} answers with CRD coverage information for a payer this service handles, and "
        f"{why} (CRD hook-13). For a comparison of every payer's policy, call order-select."
    )
