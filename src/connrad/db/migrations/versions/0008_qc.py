"""quality control: findings, a QC status per study/series, quarantine, site QC policy

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "qc_findings",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("study_pk", BIGINT_PK, nullable=False),
        sa.Column("series_pk", BIGINT_PK, nullable=True),
        sa.Column("instance_pk", BIGINT_PK, nullable=True),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("message", sa.String(length=512), nullable=False),
        sa.Column("attribute", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["studies.id"],
            name=op.f("fk_qc_findings_study_pk_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["series_pk"],
            ["series.id"],
            name=op.f("fk_qc_findings_series_pk_series"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_pk"],
            ["instances.id"],
            name=op.f("fk_qc_findings_instance_pk_instances"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qc_findings")),
    )
    op.create_index("ix_qc_findings_study", "qc_findings", ["study_pk", "stage"])
    with op.batch_alter_table("studies") as batch:
        batch.add_column(
            sa.Column("qc_status", sa.String(length=8), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("qc_checked_at", TS, nullable=True))
        batch.add_column(
            sa.Column("quarantined", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("series") as batch:
        batch.add_column(
            sa.Column("qc_status", sa.String(length=8), nullable=False, server_default="pending")
        )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("identity_fp", sa.String(length=32), nullable=True))
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column(
                "qc_policy", sa.String(length=16), nullable=False, server_default="quarantine"
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("qc_policy")
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("identity_fp")
    with op.batch_alter_table("series") as batch:
        batch.drop_column("qc_status")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("quarantined")
        batch.drop_column("qc_checked_at")
        batch.drop_column("qc_status")
    op.drop_index("ix_qc_findings_study", table_name="qc_findings")
    op.drop_table("qc_findings")
