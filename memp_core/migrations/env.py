"""Alembic environment: the connection is handed in by memp_core.migrate."""

from alembic import context
from sqlmodel import SQLModel

import memp_core.models  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch ALTERs
)
with context.begin_transaction():
    context.run_migrations()
