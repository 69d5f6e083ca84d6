"""Alembic environment, programmatic: the caller (AuditStore.migrate) passes an open connection
inside a transaction, so the migration lock and the upgrade share it."""

from alembic import context

from cds_service.audit.models import Base

VERSION_TABLE = "audit_alembic_version"  # own name: the database may be shared with other apps

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,  # SQLite can only alter tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
