"""Consent state: what a visitor decided, as the gate and the app see it."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from .entropy import token_urlsafe

#: 64 URL- and cookie-safe characters in ASCII order, so that the text of a
#: number written in them sorts like the number
_SORTABLE = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_TO_SORTABLE = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", _SORTABLE.encode()
)


def new_consent_id(now_s: int | None = None) -> str:
    """A new consent id: the time in whole seconds (48 bits, 8 sortable
    characters), then 96 random bits (URL-safe base64, :mod:`cookiegate.entropy`),
    24 characters in all.

    The time prefix makes ids made in a later second sort later, so the records'
    index on ``consent_id`` grows at its end instead of at random places (a
    random id dirties one index page per record: ~11 µs more per record on
    SQLite at 80k records, and more as the table grows). The order is that of
    the bytes: SQLite's default ``BINARY`` collation, PostgreSQL's ``C`` (a
    locale or case-insensitive collation keeps the ids correct but loses the
    locality). What it reveals: the second at which the visitor first decided
    (an id is kept by every later decision), to whoever reads the id: the
    records (which hold that time anyway), the HttpOnly cookie, and the page's
    own scripts through ``GET /_cookiegate/consent``. Seconds, not
    milliseconds, so it says no more than that. The random part alone is what
    makes an id unguessable, as before."""
    s = time.time_ns() // 1_000_000_000 if now_s is None else now_s
    if not 0 <= s < 1 << 48:
        raise ValueError("now_s must fit in 48 bits")
    # 6 bytes are 8 base64 digits; each standard digit becomes the sortable one
    # of the same value
    prefix = base64.b64encode(s.to_bytes(6, "big")).translate(_TO_SORTABLE).decode("ascii")
    return prefix + token_urlsafe(12)


#: How a decision was given.
METHODS = ("banner", "preferences", "gpc", "api", "withdraw")


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A visitor's consent, verified.

    ``decided`` is true when a valid, current consent token was presented, or when
    a ``Sec-GPC: 1`` signal stands in for a choice (``method == "gpc"``).
    ``granted`` holds the non-necessary categories the visitor allowed; strictly
    necessary cookies are always allowed. ``reason`` says why a state is
    undecided: ``"none"`` (no token), ``"invalid"`` (bad, tampered, oversized or
    foreign-key token), ``"expired"`` or ``"stale"`` (older policy version).
    """

    decided: bool
    granted: frozenset[str] = frozenset()
    policy_version: str | None = None
    consent_id: str | None = None
    decided_at: int | None = None
    expires_at: int | None = None
    method: str | None = None
    gpc: bool = False
    reason: str = "none"
    #: the token was signed with an older key and must be re-issued
    needs_reissue: bool = False
    #: every non-necessary category is granted (nothing needs filtering)
    complete: bool = False

    def allows(self, category: str) -> bool:
        """Whether cookies/telemetry of ``category`` may be used."""
        return category == "strictly_necessary" or category in self.granted

    @property
    def refused(self) -> bool:
        """A decision exists (explicit or GPC) and may have refused categories."""
        return self.decided

    def as_json(self, optional: tuple[str, ...]) -> dict[str, object]:
        """The public JSON shape of ``GET /_cookiegate/consent``."""
        return {
            "decided": self.decided,
            "categories": {name: name in self.granted for name in optional},
            "policy_version": self.policy_version,
            "consent_id": self.consent_id,
            "gpc": self.gpc,
            "method": self.method,
            "decided_at": self.decided_at,
            "expires_at": self.expires_at,
        }


UNDECIDED = ConsentState(False)


class RequestConsent:
    """The per-request view of the consent state given to the app.

    Reading it marks the response as consent-dependent, so the gate adds
    ``Vary: Cookie`` to it.
    """

    __slots__ = ("_state", "locale", "queried")

    def __init__(self, state: ConsentState) -> None:
        self._state = state
        self.queried = False
        #: the language the app chose for cookiegate's banner on this page
        self.locale: str | None = None

    def use_locale(self, locale: str | None) -> None:
        """Show cookiegate's banner or settings control on this response in
        ``locale`` (e.g. the member's account language or the page's language)
        instead of the one negotiated from ``Accept-Language``. An unsupported
        tag falls back to negotiation; ``None`` restores it."""
        self.locale = locale

    @property
    def state(self) -> ConsentState:
        self.queried = True
        return self._state

    def allows(self, category: str) -> bool:
        """Whether ``category`` is allowed for this request's visitor."""
        self.queried = True
        return self._state.allows(category)

    @property
    def decided(self) -> bool:
        self.queried = True
        return self._state.decided

    @property
    def gpc(self) -> bool:
        self.queried = True
        return self._state.gpc

    @property
    def granted(self) -> frozenset[str]:
        self.queried = True
        return self._state.granted

    @property
    def consent_id(self) -> str | None:
        return self._state.consent_id

    def __repr__(self) -> str:
        return f"RequestConsent({self._state!r})"


#: what ``my-data`` holds of a visitor with no records (no consent id, or the
#: gate keeps none): shared by the gate and the records package, which the
#: core does not import (it needs SQLAlchemy)
EMPTY_MY_DATA: dict[str, object] = {
    "records": [],
    "records_total": 0,  # more than len(records): only the latest are in it
    "receipt": None,
    "account_linked": False,
    "telemetry": 0,
    "complete": True,  # every record written is in ``records`` (false during an outage)
    "pending": 0,
}
