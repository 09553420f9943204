"""All models; importing this package registers every table on ``Base.metadata``."""

from storage.models.base import Base, BigIntPK, UTCDateTime
from storage.models.core import (
    AuditLog,
    Bot,
    Campaign,
    ChannelIdentity,
    Consent,
    InboxUpdate,
    MemberCode,
    Organiser,
    Supporter,
    SupporterTag,
)

__all__ = [
    "AuditLog",
    "Base",
    "BigIntPK",
    "Bot",
    "Campaign",
    "ChannelIdentity",
    "Consent",
    "InboxUpdate",
    "MemberCode",
    "Organiser",
    "Supporter",
    "SupporterTag",
    "UTCDateTime",
]
