"""pieces of a mixed-stream segment know the segment they were split from

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 09:40:00

- ``transcriptions.split_from``: on every row made by splitting a completed
  mixed-stream segment at speaker changes, the start of that segment (the first
  piece has start_time = split_from). A revision of the segment (new words) is
  split again: the collector then deletes the earlier split's rows that the new
  split does not have. NULL on rows that were not split (per-participant capture,
  drafts, rows from before this revision).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transcriptions", sa.Column("split_from", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("transcriptions", "split_from")
