"""per-user webhook secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 06:30:00

- ``webhook_secrets``: one signing secret per user. Kept in its own table rather
  than ``users.data`` so that no view of a user (admin routes, analytics) can
  return it; only ``PUT /user/webhook`` shows it, once.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_secrets",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("secret", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("webhook_secrets")
