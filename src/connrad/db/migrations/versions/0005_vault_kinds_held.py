"""identity records per patient, study and instance; pixel policy; held instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("identity_records") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="patient")
        )
        batch.drop_constraint("uq_identity_records_site_id_pseudonym", type_="unique")
        batch.create_unique_constraint(
            "uq_identity_records_site_id_kind_pseudonym", ["site_id", "kind", "pseudonym"]
        )
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column("pixel_policy", sa.String(length=16), nullable=False, server_default="clean")
        )
    op.create_table(
        "held_instances",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("device_id", BIGINT_PK, nullable=True),
        sa.Column("door", sa.String(length=16), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=80), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=256), nullable=False, server_default=""),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_held_instances_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_instances")),
        sa.UniqueConstraint("sop_uid", name=op.f("uq_held_instances_sop_uid")),
    )
    op.create_index("ix_held_instances_site_state", "held_instances", ["site_id", "state"])


def downgrade() -> None:
    op.drop_table("held_instances")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("pixel_policy")
    with op.batch_alter_table("identity_records") as batch:
        batch.drop_constraint("uq_identity_records_site_id_kind_pseudonym", type_="unique")
        batch.create_unique_constraint(
            "uq_identity_records_site_id_pseudonym", ["site_id", "pseudonym"]
        )
        batch.drop_column("kind")
