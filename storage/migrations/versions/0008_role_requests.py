"""Role requests: a grant of approver, warning_approver or admin waits here for a second
admin's ✅ before it is written to role_grants.

Revision ID: 0008_role_requests
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_role_requests"
down_revision = "0007_reads"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "role_requests",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("origin_room", sa.String(255), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
    )
    op.create_index("ix_role_requests_state", "role_requests", ["state"])
