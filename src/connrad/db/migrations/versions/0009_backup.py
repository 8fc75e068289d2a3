"""PACS backup: routing rules, the deliveries outbox, destination health

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.id"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    with op.batch_alter_table("destinations") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("circuit_open_until", TS, nullable=True))
        batch.add_column(
            sa.Column("last_error", sa.String(length=256), nullable=False, server_default="")
        )
    op.create_table(
        "routing_rules",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("destination_id", BIGINT_PK, nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("qc", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _fk("routing_rules", "site_id", "sites"),
        _fk("routing_rules", "destination_id", "destinations"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_rules")),
    )
    op.create_index(op.f("ix_routing_rules_site_id"), "routing_rules", ["site_id"])
    op.create_table(
        "deliveries",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("destination_id", BIGINT_PK, nullable=False),
        sa.Column("instance_pk", BIGINT_PK, nullable=False),
        sa.Column("study_pk", BIGINT_PK, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("qc", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("run_after", TS, nullable=False),
        sa.Column("locked_by", sa.String(length=128), nullable=True),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("last_error", sa.String(length=256), nullable=False),
        sa.Column("remote_study_uid", sa.String(length=64), nullable=True),
        sa.Column("remote_sop_uid", sa.String(length=64), nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("confirmed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        _fk("deliveries", "destination_id", "destinations"),
        _fk("deliveries", "instance_pk", "instances"),
        _fk("deliveries", "study_pk", "studies"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "destination_id", "instance_pk", name=op.f("uq_deliveries_destination_id_instance_pk")
        ),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["destination_id", "state", "run_after"])
    op.create_index(op.f("ix_deliveries_study_pk"), "deliveries", ["study_pk"])


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("routing_rules")
    with op.batch_alter_table("destinations") as batch:
        batch.drop_column("last_error")
        batch.drop_column("circuit_open_until")
        batch.drop_column("failures")
