"""Alembic environment: runs against the connection handed in by connrad.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from connrad.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is None:
    from connrad.db.engine import make_engine
    from connrad.settings import get_settings

    with make_engine(get_settings().effective_database_url).connect() as conn:
        run_migrations(conn)
else:
    run_migrations(connection)
