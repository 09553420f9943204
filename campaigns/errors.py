"""One family of refusals: input the rules turn down, explained in the reader's language.

Every layer that shows an error (the bot, the dashboard, the API, the CLI) asks the
same question, `exc.message(lang)`, instead of special-casing each feature's class.
`code` is the stable machine name the HTTP API puts in `{"error": {"code": ...}}`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from campaigns.i18n import t, t_plain


class RuleError(ValueError):
    """Something an organiser or supporter must fix; `message(lang)` says what.

    `msgid` is an English gettext message id with `{name}` fields filled from
    `params`; a message with no catalog entry is shown in English.
    """

    code: ClassVar[str] = "rule_violation"

    def __init__(self, msgid: str, /, **params: Any) -> None:
        super().__init__(msgid)
        self.msgid = msgid
        self.params = params

    def _params(self, lang: str) -> dict[str, Any]:
        """Hook for subclasses whose parameters are themselves translated."""
        return self.params

    def message(self, lang: str = "en") -> str:
        return t_plain(lang, self.msgid, **self._params(lang))

    def html(self, lang: str = "en") -> str:
        return t(lang, self.msgid, **self._params(lang))

    def __str__(self) -> str:
        return self.message("en")


class NotFound(RuleError):
    """The thing named (a slug, an id) does not exist."""

    code: ClassVar[str] = "not_found"


class Conflict(RuleError):
    """The request clashes with what is stored (a taken slug, a closed petition)."""

    code: ClassVar[str] = "conflict"
