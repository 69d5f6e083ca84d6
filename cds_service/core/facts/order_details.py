"""Facts the ordering clinician states on the draft ServiceRequest (orderDetail codes in
http://dli-hpc-cds.org/fhir/CodeSystem/order-detail)."""

from __future__ import annotations

from cds_service.core.facts.context import Context
from cds_service.core.model import Evidence, Fact, Order

_SOURCES = ("original-donor", "different-donor")
_PRODUCTS = ("unmanipulated-product", "genetically-modified-product", "ex-vivo-manipulated-product")


def _pick(order: Order, options: tuple[str, ...]) -> Fact:
    stated = [o for o in options if o in order.details]
    if len(stated) != 1:
        why = "not stated on the order" if not stated else "conflicting details on the order"
        return Fact(None, note=why)
    return Fact(
        stated[0], (Evidence(order.reference, f"Order detail: {stated[0]}", order.authored_on),)
    )


def product_source(ctx: Context) -> Fact:
    return _pick(ctx.order, _SOURCES) if ctx.order else Fact(None, note="no order")


def product_manipulation(ctx: Context) -> Fact:
    """Stated on the order; when not stated, CPT 38242/38243 alone describes a standard product.

    A genetically modified or manipulated product is billed differently (e.g. CPT 86999 in
    Anthem CG-TRANS-03 Coding), so the plain order code is read as an unmanipulated product.
    """
    if ctx.order is None:
        return Fact(None, note="no order")
    if not any(o in ctx.order.details for o in _PRODUCTS):
        summary = f"Order code {ctx.order.billing_code} with no product modification stated"
        evidence = (Evidence(ctx.order.reference, summary, ctx.order.authored_on),)
        return Fact("unmanipulated-product", evidence, note="inferred from the order code")
    return _pick(ctx.order, _PRODUCTS)


def high_relapse_risk_attested(ctx: Context) -> Fact:
    if ctx.order is None:
        return Fact(None, note="no order")
    if "high-relapse-risk" in ctx.order.details:
        evidence = (
            Evidence(ctx.order.reference, "Order detail: high-relapse-risk", ctx.order.authored_on),
        )
        return Fact(True, evidence)
    return Fact(False, note="the order carries no high-relapse-risk attestation")
