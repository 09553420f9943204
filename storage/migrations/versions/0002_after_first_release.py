"""after first release

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "poll_voter_count",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("poll_id", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_poll_voter_count")),
    )
    with op.batch_alter_table("poll_voter_count", schema=None) as batch_op:
        batch_op.create_index(
            "uq_poll_voter_count_folded",
            ["poll_id"],
            unique=True,
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.create_table(
        "supporter_count",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supporter_count")),
    )
    with op.batch_alter_table("supporter_count", schema=None) as batch_op:
        batch_op.create_index(
            "uq_supporter_count_folded",
            ["bot_id", "status", "tier", "region"],
            unique=True,
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.create_table(
        "supporter_reach_count",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("reachable", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supporter_reach_count")),
    )
    with op.batch_alter_table("supporter_reach_count", schema=None) as batch_op:
        batch_op.create_index(
            "uq_supporter_reach_count_folded",
            ["bot_id", "reachable"],
            unique=True,
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.create_table(
        "supporter_signup_count",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("bot_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("folded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supporter_signup_count")),
    )
    with op.batch_alter_table("supporter_signup_count", schema=None) as batch_op:
        batch_op.create_index("ix_supporter_signup_count_hour", ["hour"], unique=False)
        batch_op.create_index(
            "uq_supporter_signup_count_folded",
            ["bot_id", "hour"],
            unique=True,
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.create_table(
        "x_account",
        sa.Column("bot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("auth", sa.String(length=16), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_claimed_by", sa.String(length=64), nullable=True),
        sa.Column("refresh_claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_error", sa.String(length=200), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bot.id"], name=op.f("fk_x_account_bot_id_bot"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bot_id", name=op.f("pk_x_account")),
    )
    op.create_table(
        "interest",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "chapter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("retired", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.ForeignKeyConstraint(
            ["chapter_id"],
            ["chapter.id"],
            name=op.f("fk_interest_chapter_id_chapter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interest")),
        sa.UniqueConstraint("chapter_id", "name", name=op.f("uq_interest_chapter_id_name")),
    )
    op.create_table(
        "invite",
        sa.Column(
            "supporter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("joined", sa.Integer(), server_default="0", nullable=False),
        sa.Column("show_name", sa.Boolean(), server_default=sa.text("(false)"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["supporter_id"],
            ["supporter.id"],
            name=op.f("fk_invite_supporter_id_supporter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("supporter_id", name=op.f("pk_invite")),
        sa.UniqueConstraint("code", name=op.f("uq_invite_code")),
    )
    op.create_table(
        "referral",
        sa.Column(
            "supporter_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "referrer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["referrer_id"],
            ["supporter.id"],
            name=op.f("fk_referral_referrer_id_supporter"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["supporter_id"],
            ["supporter.id"],
            name=op.f("fk_referral_supporter_id_supporter"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("supporter_id", name=op.f("pk_referral")),
    )
    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.create_index("ix_referral_referrer", ["referrer_id"], unique=False)

    with op.batch_alter_table("bot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hint", sa.String(length=40), nullable=True))

    with op.batch_alter_table("event_rsvp", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_ref", sa.String(length=64), nullable=True))

    with op.batch_alter_table("supporter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supporter_audience"))
        batch_op.drop_index(batch_op.f("ix_supporter_bot_region_id"))
        batch_op.drop_index(batch_op.f("ix_supporter_bot_status"))


def downgrade() -> None:
    with op.batch_alter_table("supporter", schema=None) as batch_op:
        batch_op.drop_index("ix_supporter_area", postgresql_include=["tier", "status"])
        batch_op.create_index(
            batch_op.f("ix_supporter_bot_status"), ["bot_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_supporter_bot_region_id"), ["bot_id", "region", "id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_supporter_audience"),
            ["bot_id", "region", "tier", "status", "id"],
            unique=False,
        )

    with op.batch_alter_table("event_rsvp", schema=None) as batch_op:
        batch_op.drop_column("source_ref")

    with op.batch_alter_table("bot", schema=None) as batch_op:
        batch_op.drop_column("token_hint")

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_referrer")

    op.drop_table("referral")
    op.drop_table("invite")
    op.drop_table("interest")
    op.drop_table("x_account")
    with op.batch_alter_table("supporter_signup_count", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_supporter_signup_count_folded",
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )
        batch_op.drop_index("ix_supporter_signup_count_hour")

    op.drop_table("supporter_signup_count")
    with op.batch_alter_table("supporter_reach_count", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_supporter_reach_count_folded",
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.drop_table("supporter_reach_count")
    with op.batch_alter_table("supporter_count", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_supporter_count_folded",
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.drop_table("supporter_count")
    with op.batch_alter_table("poll_voter_count", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_poll_voter_count_folded",
            postgresql_where=sa.text("folded"),
            sqlite_where=sa.text("folded"),
        )

    op.drop_table("poll_voter_count")
