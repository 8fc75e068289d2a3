"""identity vault: site de-identification policy, wrapped site keys, sealed records, terms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(
            sa.Column(
                "deid_policy", sa.String(length=16), nullable=False, server_default="pseudonymized"
            )
        )
    op.create_table(
        "site_keys",
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("master_key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_keys_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", "version", name=op.f("pk_site_keys")),
    )
    op.create_table(
        "identity_records",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_identity_records_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_records")),
        sa.UniqueConstraint(
            "site_id", "pseudonym", name=op.f("uq_identity_records_site_id_pseudonym")
        ),
    )
    op.create_table(
        "identity_terms",
        sa.Column("id", BIGINT_PK, nullable=False),
        sa.Column("site_id", BIGINT_PK, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("record_id", BIGINT_PK, nullable=False),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["identity_records.id"],
            name=op.f("fk_identity_terms_record_id_identity_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_identity_terms_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_terms")),
    )
    op.create_index("ix_identity_terms_lookup", "identity_terms", ["site_id", "kind", "term"])
    op.create_index("ix_identity_terms_record_id", "identity_terms", ["record_id"])


def downgrade() -> None:
    op.drop_table("identity_terms")
    op.drop_table("identity_records")
    op.drop_table("site_keys")
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("deid_policy")
