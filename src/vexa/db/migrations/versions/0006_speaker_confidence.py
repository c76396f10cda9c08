"""speaker confidence for mixed-stream attribution

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 06:40:00

- ``transcriptions.speaker_confidence``: how sure the word-level attribution of a
  mixed stream (Teams, Zoom web) is, 0-1; NULL where the speaker came with the
  audio (per-participant capture) or from an upstream producer without words.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("transcriptions", sa.Column("speaker_confidence", sa.Float(), nullable=True))


def downgrade() -> None:
    op.drop_column("transcriptions", "speaker_confidence")
