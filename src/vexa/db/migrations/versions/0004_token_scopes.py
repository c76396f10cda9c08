"""API token scopes and expiry

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 06:30:00

- ``api_tokens.scope``: what a key may do ('full', 'bots', 'transcripts'); existing
  keys become 'full', which is what upstream keys can do.
- ``api_tokens.expires_at``: optional; an expired key answers 401.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "api_tokens",
        sa.Column("scope", sa.String(16), server_default=sa.text("'full'"), nullable=False),
    )
    op.add_column("api_tokens", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        "ck_api_tokens_scope", "api_tokens", "scope IN ('full', 'bots', 'transcripts')"
    )


def downgrade() -> None:
    op.drop_constraint("ck_api_tokens_scope", "api_tokens", type_="check")
    op.drop_column("api_tokens", "expires_at")
    op.drop_column("api_tokens", "scope")
