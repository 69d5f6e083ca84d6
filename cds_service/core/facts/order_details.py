"""Facts the ordering clinician states on the draft ServiceRequest: orderDetail codes in
http://dli-hpc-cds.org/fhir/CodeSystem/order-detail, plain orderDetail text and our order
questions (core/orders.py reads all three), and for the donor, the products' donors.

The donor of the ordered product, when the order does not say it: the BiologicallyDerivedProduct
contained in the order (named in supportingInfo) and the index transplant's graft (a contained
BiologicallyDerivedProduct named in `Procedure.usedReference`), both with `collection.source`:
the same donor reference is the original donor, another reference a different donor.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.biologicallyderivedproduct import BiologicallyDerivedProduct
from pydantic import ValidationError

from cds_service.core.facts.context import Context
from cds_service.core.fhir_util import INVALID_FHIR
from cds_service.core.model import Evidence, Fact, Order
from cds_service.core.orders import supporting

_SOURCES = ("original-donor", "different-donor")
_PRODUCTS = ("genetically-modified-product", "ex-vivo-manipulated-product", "unmanipulated-product")


def _pick(order: Order, options: tuple[str, ...], also: dict[str, str] | None = None) -> Fact:
    """The one option the order states (`also`: option -> where else it is stated)."""
    where = {o: order.source_of(o) for o in options if o in order.details} | (also or {})
    stated = [o for o in options if o in where]
    if len(stated) != 1:
        why = "not stated on the order" if not stated else "conflicting details on the order"
        return Fact(None, note=f"not documented: {why}")
    # the first option is what the criteria ask for; another stated option is its absence
    state = "documented present" if stated[0] == options[0] else "documented absent"
    return Fact(
        stated[0],
        (Evidence(order.reference, f"{where[stated[0]]}: {stated[0]}", order.authored_on),),
        note=f"{state}: stated on the order",
    )


def _donor(product: Any) -> str | None:
    collection = product.collection if product is not None else None
    source = collection.source if collection is not None else None
    return str(source.reference) if source is not None and source.reference else None


def _ordered_product_donor(order: Order) -> str | None:
    for raw in supporting(order.resource, "BiologicallyDerivedProduct"):
        try:
            donor = _donor(BiologicallyDerivedProduct.model_validate(raw))
        except (ValidationError, *INVALID_FHIR):
            continue  # an unreadable product says nothing
        if donor:
            return donor
    return None


def _graft_donor(ctx: Context) -> str | None:
    index = ctx.index_transplant
    if index is None:
        return None
    used = {str(r.reference)[1:] for r in index.procedure.usedReference or () if r.reference}
    for contained in index.procedure.contained or ():
        if contained.get_resource_type() == "BiologicallyDerivedProduct" and contained.id in used:
            return _donor(contained)
    return None


def product_source(ctx: Context) -> Fact:
    if ctx.order is None:
        return Fact(None, note="no order")
    ordered, graft = _ordered_product_donor(ctx.order), _graft_donor(ctx)
    also = {}
    if ordered and graft:
        same = "original-donor" if ordered == graft else "different-donor"
        also[same] = "Product donor (BiologicallyDerivedProduct) vs the transplant graft's"
    return _pick(ctx.order, _SOURCES, also)


def product_manipulation(ctx: Context) -> Fact:
    """Stated on the order (code, readable text or order question), else not documented.

    CPT 38242 / 38243 name the infusion, not how the product was processed: a plain order code
    is silent on manipulation (docs/integration.md §5), and so is an order-detail text the
    service cannot read, so both leave the criterion unknown and the card asks for the product.
    """
    if ctx.order is None:
        return Fact(None, note="no order")
    return _pick(ctx.order, _PRODUCTS)


_HIGH_RISK = "high-relapse-risk"
_NOT_HIGH_RISK = "not-high-relapse-risk"


def _stated(order: Order, detail: str) -> tuple[Evidence, ...]:
    """The order as evidence of one of its details, naming where on the order it was stated."""
    return (Evidence(order.reference, f"{order.source_of(detail)}: {detail}", order.authored_on),)


def high_relapse_risk_attested(ctx: Context) -> Fact:
    """The clinician's high-relapse-risk attestation. A missing order detail is not documented,
    never "no": Molina ("member considered high risk") and Centene I.A leave the judgement to
    the treating team, so the card asks for it."""
    if ctx.order is None:
        return Fact(None, note="not documented: no order")
    if _HIGH_RISK in ctx.order.details:
        return Fact(
            True, _stated(ctx.order, _HIGH_RISK), note="documented present: attested on the order"
        )
    if _NOT_HIGH_RISK in ctx.order.details:  # the clinician answered "no"
        return Fact(
            False,
            _stated(ctx.order, _NOT_HIGH_RISK),
            note="documented absent: the order answers 'not at high risk'",
        )
    return Fact(
        None,
        note="not documented: the order does not say whether the patient is at high risk of "
        "relapse; record the high-risk assessment on the order (order detail high-relapse-risk)",
    )


def other_high_risk_setting(ctx: Context) -> Fact:
    """BCBSMS: "Settings considered high risk for relapse *include*" TCD grafts and RIC/NMA, a
    list that is not exhaustive. A high-risk attestation in another setting (e.g. after
    myeloablative conditioning) cannot be judged from the record: medical director review
    (unknown). Without an attestation no other setting is claimed (documented absent)."""
    if ctx.order is None:
        return Fact(None, note="not documented: no order")
    if _HIGH_RISK in ctx.order.details:
        evidence = (
            Evidence(
                ctx.order.reference,
                f"{ctx.order.source_of(_HIGH_RISK)}: high-relapse-risk",
                ctx.order.authored_on,
            ),
        )
        return Fact(
            None,
            evidence,
            note="not documented: high relapse risk is attested in a setting the policy does not "
            "name; medical director review",
        )
    return Fact(False, note="documented absent: the order claims no other high-risk setting")
