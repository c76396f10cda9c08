"""meeting_sessions are found by session_uid alone; created_at NOT NULL where the models say so

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 02:40:00

- ``ix_meeting_sessions_session_uid``: the collector binds a transcription session to its
  meeting by ``session_uid`` (and the user), which the unique constraint on
  ``(meeting_id, session_uid)`` cannot serve: every lookup scanned the whole table, which only
  grows. With 1,000 meetings the consumer spent most of its time waiting for those scans
  (bench/collector.py --meetings 1000: 1,697 -> 5,412 segments/s).
- ``final_segments.created_at`` and ``webhook_secrets.created_at`` became nullable in 0003/0005
  while the models have them NOT NULL (tests/test_db_migrations.py compares the two now). Both
  have a ``now()`` default, so no row should lack one; any that does gets the migration's time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_CREATED_AT = ("final_segments", "webhook_secrets")


def upgrade() -> None:
    op.create_index("ix_meeting_sessions_session_uid", "meeting_sessions", ["session_uid"])
    for table in _CREATED_AT:
        op.execute(sa.text(f"UPDATE {table} SET created_at = now() WHERE created_at IS NULL"))
        op.alter_column(table, "created_at", existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    for table in _CREATED_AT:
        op.alter_column(table, "created_at", existing_type=sa.DateTime(timezone=True), nullable=True)
    op.drop_index("ix_meeting_sessions_session_uid", table_name="meeting_sessions")
