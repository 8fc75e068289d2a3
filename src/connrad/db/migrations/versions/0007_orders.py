"""orders: scheduling in clear, the patient's identity sealed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("station_ae", sa.String(length=16), nullable=True),
        sa.Column("scheduled_start", TS, nullable=False),
        sa.Column("utc_offset_minutes", sa.Integer(), nullable=False),
        sa.Column("procedure_code", sa.String(length=16), nullable=False),
        sa.Column("procedure_scheme", sa.String(length=16), nullable=False),
        sa.Column("procedure_meaning", sa.String(length=64), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("accession_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_orders_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "site_id", "accession_index", name=op.f("uq_orders_site_id_accession_index")
        ),
    )
    op.create_index("ix_orders_site_start", "orders", ["site_id", "scheduled_start"])


def downgrade() -> None:
    op.drop_table("orders")
