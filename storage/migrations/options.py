"""Options shared by env.py (upgrades, autogenerate) and the schema comparison in tests."""

from __future__ import annotations

from typing import Any, Literal

from alembic.autogenerate.api import AutogenContext

from storage.models.base import UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our column types as plain SQLAlchemy ones, so migrations never import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def comparison_options() -> dict[str, Any]:
    return {"compare_type": True, "render_item": render_item}
