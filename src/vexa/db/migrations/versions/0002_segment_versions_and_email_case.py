"""segment versions and case-insensitive emails

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:30:00

- ``transcriptions.version``: the producer-assigned order of a segment's drafts
  (derived from its stream entry id), so a replayed older draft never overwrites
  a newer row. Rows written before this migration get 0: any later draft wins.
- ``uq_users_email_lower``: emails are unique regardless of case, so a lookup by
  email finds at most one user. Existing case-duplicates must be merged by hand
  first; the migration says which emails clash instead of failing obscurely.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "transcriptions",
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    )
    clashes = (
        op.get_bind()
        .execute(sa.text("SELECT lower(email) FROM users GROUP BY lower(email) HAVING count(*) > 1 LIMIT 20"))
        .scalars()
        .all()
    )
    if clashes:
        raise RuntimeError(
            "users whose emails differ only in case must be merged before this migration: "
            + ", ".join(clashes)
        )
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)


def downgrade() -> None:
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_column("transcriptions", "version")
