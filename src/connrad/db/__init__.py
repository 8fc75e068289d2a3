"""Database engine, sessions, shared column types and Alembic migrations."""
