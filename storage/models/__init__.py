"""All models; importing this package registers every table on ``Base.metadata``."""

from storage.models.api import ApiToken, WebhookDelivery, WebhookSubscription
from storage.models.base import Base, BigIntPK, UTCDateTime
from storage.models.broadcasts import Broadcast, OutboxMessage
from storage.models.chapters import Chapter, ChapterOrganiser
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
from storage.models.events import Event, EventNotice, EventReminder, EventRsvp
from storage.models.ideas import Idea, IdeaBacking, IdeaDraft, IdeaSettings
from storage.models.invites import Interest, Invite, Referral
from storage.models.petitions import (
    NativePollMap,
    OrganiserNotice,
    Petition,
    PetitionCard,
    PetitionCountDelta,
    PetitionRegionCount,
    PetitionSourceAlert,
    Poll,
    PollAnswer,
    PollBallot,
    PollBallotPending,
    PollVoter,
    Signature,
)
from storage.models.signin import LoginLink
from storage.models.supporter_counts import (
    PollVoterCount,
    ReachCount,
    SignupCount,
    SupporterCount,
)
from storage.models.surveys import (
    Survey,
    SurveyAnswer,
    SurveyAnswerPending,
    SurveyProgress,
    SurveyRespondent,
)
from storage.models.x import XAccount, XCursor, XMention, XPoll, XPost

__all__ = [
    "ApiToken",
    "AuditLog",
    "Base",
    "BigIntPK",
    "Bot",
    "Broadcast",
    "Campaign",
    "ChannelIdentity",
    "Chapter",
    "ChapterOrganiser",
    "Consent",
    "Event",
    "EventNotice",
    "EventReminder",
    "EventRsvp",
    "Idea",
    "IdeaBacking",
    "IdeaDraft",
    "IdeaSettings",
    "InboxUpdate",
    "Interest",
    "Invite",
    "LoginLink",
    "MemberCode",
    "NativePollMap",
    "Organiser",
    "OrganiserNotice",
    "OutboxMessage",
    "Petition",
    "PetitionCard",
    "PetitionCountDelta",
    "PetitionRegionCount",
    "PetitionSourceAlert",
    "Poll",
    "PollAnswer",
    "PollBallot",
    "PollBallotPending",
    "PollVoter",
    "PollVoterCount",
    "ReachCount",
    "Referral",
    "Signature",
    "SignupCount",
    "Supporter",
    "SupporterCount",
    "SupporterTag",
    "Survey",
    "SurveyAnswer",
    "SurveyAnswerPending",
    "SurveyProgress",
    "SurveyRespondent",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookSubscription",
    "XAccount",
    "XCursor",
    "XMention",
    "XPoll",
    "XPost",
]
