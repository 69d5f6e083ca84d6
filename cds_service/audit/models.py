"""Audit tables (SQLAlchemy 2 typed ORM). References and outcomes only: no names, birth dates,
raw bundles or tokens. The Alembic migrations in `migrations/` create exactly these tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# BIGINT on PostgreSQL, INTEGER (the rowid alias, so autoincrement works) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every backend (SQLite has no time zones), read back as aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("audit timestamps must carry a time zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class DecisionRow(Base):
    """One answered hook call."""

    __tablename__ = "audit_decision"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    hook_instance: Mapped[str] = mapped_column(String(64), index=True)
    service_id: Mapped[str] = mapped_column(String(64))
    hook: Mapped[str] = mapped_column(String(32))
    client_iss: Mapped[str | None] = mapped_column(String(512))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    orders: Mapped[list[Any]]  # "ServiceRequest/<id>" references
    data_source: Mapped[str] = mapped_column(String(16))  # prefetch | fetched | mixed
    latency_ms: Mapped[float]
    record_id: Mapped[str | None] = mapped_column(String(36), index=True, unique=True)
    # CRDMetricData per call (audit/crd_metrics.py); null in records stored before 0004
    payer: Mapped[str | None] = mapped_column(String(64), index=True)
    crd_version: Mapped[str | None] = mapped_column(String(8))
    http_status: Mapped[int | None]
    token_use: Mapped[str | None] = mapped_column(String(16))
    sources: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    # Read-only relationships: writes are Core bulk inserts (store.py), deletes cascade in SQL.
    evaluations: Mapped[list[EvaluationRow]] = relationship(order_by="EvaluationRow.id")
    cards: Mapped[list[CardRow]] = relationship(order_by="CardRow.id")


class EvaluationRow(Base):
    """One (order, policy) evaluation and the card that showed it."""

    __tablename__ = "audit_evaluation"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    decision_id: Mapped[int] = mapped_column(
        ForeignKey("audit_decision.id", ondelete="CASCADE"), index=True
    )
    order_ref: Mapped[str] = mapped_column(String(140))
    service: Mapped[str] = mapped_column(String(16))
    policy_id: Mapped[str] = mapped_column(String(64), index=True)
    policy_version: Mapped[str] = mapped_column(String(32))
    determination: Mapped[str] = mapped_column(String(32), index=True)
    card_uuid: Mapped[str | None] = mapped_column(String(64), index=True)
    coverage_assertion_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # CRDMetricData coverageInfo (covered, paNeeded, docNeeded, infoNeeded); null: none returned
    coverage_info: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    criteria: Mapped[list[CriterionRow]] = relationship(order_by="CriterionRow.id")


class CriterionRow(Base):
    """One criterion's status and the `Type/id` references of its evidence."""

    __tablename__ = "audit_criterion"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(
        ForeignKey("audit_evaluation.id", ondelete="CASCADE"), index=True
    )
    criterion_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[list[Any]]


class CardRow(Base):
    """A card returned to the client, by uuid, with its suggestions' uuids."""

    __tablename__ = "audit_card"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    decision_id: Mapped[int] = mapped_column(
        ForeignKey("audit_decision.id", ondelete="CASCADE"), index=True
    )
    uuid: Mapped[str] = mapped_column(String(64), index=True)
    suggestion_uuids: Mapped[list[Any]]


class FeedbackRow(Base):
    """One CDS Hooks feedback item. `decision_id` is null while the card is unknown (flagged)."""

    __tablename__ = "audit_feedback"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    service_id: Mapped[str] = mapped_column(String(64))
    client_iss: Mapped[str | None] = mapped_column(String(512))
    card_uuid: Mapped[str] = mapped_column(String(128), index=True)
    decision_id: Mapped[int | None] = mapped_column(
        ForeignKey("audit_decision.id", ondelete="CASCADE"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(16))
    outcome_timestamp: Mapped[datetime]
    accepted_suggestions: Mapped[list[Any]]
    reason_system: Mapped[str | None] = mapped_column(String(256))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    reason_display: Mapped[str | None] = mapped_column(String(256))
    user_comment: Mapped[str | None] = mapped_column(Text)

    @property
    def card_known(self) -> bool:
        return self.decision_id is not None


class SeenJtiRow(Base):
    """A client JWT's `jti`, seen once: the replay cache every worker and replica shares
    (api/replay.py). Keyed by a digest of issuer and jti, so no client-chosen text of any length
    is stored; kept until the token expires, then purged."""

    __tablename__ = "auth_seen_jti"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)  # epoch seconds
