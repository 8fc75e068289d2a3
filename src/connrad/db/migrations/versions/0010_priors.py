"""prior studies: links from a study to the earlier studies of its patient

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "study_priors",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("study_pk", BIGINT_PK, nullable=False),
        sa.Column("prior_study_pk", BIGINT_PK, nullable=False),
        sa.Column("linked_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["study_pk"],
            ["studies.id"],
            name=op.f("fk_study_priors_study_pk_studies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prior_study_pk"],
            ["studies.id"],
            name=op.f("fk_study_priors_prior_study_pk_studies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_study_priors")),
        sa.UniqueConstraint(
            "study_pk", "prior_study_pk", name=op.f("uq_study_priors_study_pk_prior_study_pk")
        ),
    )
    op.create_index(op.f("ix_study_priors_prior_study_pk"), "study_priors", ["prior_study_pk"])


def downgrade() -> None:
    op.drop_index(op.f("ix_study_priors_prior_study_pk"), table_name="study_priors")
    op.drop_table("study_priors")
