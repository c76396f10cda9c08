"""final (post-meeting) transcript segments

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 06:45:00

``final_segments`` holds the transcript decoded again from the recording after the
meeting; recordings themselves are listed in ``meetings.data["recordings"]`` (as
upstream keeps them), so they need no table.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "final_segments",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column(
            "meeting_id", sa.Integer(), sa.ForeignKey("meetings.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("start_time", sa.Float(), nullable=False),
        sa.Column("end_time", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("speaker", sa.String(255)),
        sa.Column("language", sa.String(10)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_index("ix_final_segments_meeting_start", "final_segments", ["meeting_id", "start_time"])


def downgrade() -> None:
    op.drop_index("ix_final_segments_meeting_start", table_name="final_segments")
    op.drop_table("final_segments")
