"""Engagement rules: the merchant's settings, the sensitive-word filter, comments and their
moderation, share codes and the attribution window.

Counters (views, likes, comments, shares, clicks) are not read-and-written here: each is
guarded by a unique key (a member's view of a day, a member's like, an opener's click of a
day) and moves by one `$inc` only when that key changed, so a retry never counts twice.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

import ahocorasick

from siyu_kit.aggregate import Aggregate, Move, StateMachine
from siyu_kit.errors import Violations

# ---- settings ---------------------------------------------------------------------------

DEFAULT_REPORT_HIDE_THRESHOLD = 3
DEFAULT_ATTRIBUTION_WINDOW_DAYS = 7
MAX_WORDS = 2000
WORD_MAX_LEN = 32


@dataclass(frozen=True)
class EngagementSettings:
    sensitive_words: tuple[str, ...] = ()
    report_hide_threshold: int = DEFAULT_REPORT_HIDE_THRESHOLD
    attribution_window_days: int = DEFAULT_ATTRIBUTION_WINDOW_DAYS

    def normalized(self) -> "EngagementSettings":
        """Words trimmed, case-folded, without repeats, in a stable order; blanks dropped."""
        words = sorted({normal(w) for w in self.sensitive_words if w.strip()})
        return replace(self, sensitive_words=tuple(words))

    def summary(self) -> dict:
        """What the audit log keeps of a version."""
        return {"sensitive_words": list(self.sensitive_words), "report_hide_threshold": self.report_hide_threshold,
                "attribution_window_days": self.attribution_window_days}


def check_settings(s: EngagementSettings, expected_version: int, v: Violations) -> None:
    v.check(len(s.sensitive_words) <= MAX_WORDS, "settings.sensitive_words", f"at most {MAX_WORDS} words")
    for i, word in enumerate(s.sensitive_words):
        v.check(1 <= len(word.strip()) <= WORD_MAX_LEN, f"settings.sensitive_words[{i}]",
                f"1 to {WORD_MAX_LEN} characters, not blank")
    v.check(1 <= s.report_hide_threshold <= 1000, "settings.report_hide_threshold", "1 to 1000")
    v.check(1 <= s.attribution_window_days <= 90, "settings.attribution_window_days", "1 to 90 days")
    v.check(expected_version >= 0, "expected_version", "0 or more")


# ---- the sensitive-word filter -----------------------------------------------------------

def normal(text: str) -> str:
    """What matching compares: case-folded (Chinese is unchanged), full-width letters and
    digits folded to their ASCII forms."""
    return text.strip().casefold().translate(_FULL_WIDTH)


_FULL_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


class WordFilter:
    """Every sensitive word found in a text, overlapping ones included, in one pass
    (Aho–Corasick), however long the list."""

    def __init__(self, words: tuple[str, ...] | list[str]):
        self._automaton = ahocorasick.Automaton()
        self._words = 0
        for word in {normal(w) for w in words if w.strip()}:
            self._automaton.add_word(word, word)
            self._words += 1
        if self._words:
            self._automaton.make_automaton()

    def matches(self, text: str) -> list[str]:
        """The words found, each once, in order of first appearance."""
        if not self._words or not text:
            return []
        found: dict[str, int] = {}
        for end, word in self._automaton.iter(normal_text(text)):
            found.setdefault(word, end - len(word) + 1)
        return sorted(found, key=lambda w: (found[w], w))


def normal_text(text: str) -> str:
    # No strip: positions stay the text's own.
    return text.casefold().translate(_FULL_WIDTH)


# ---- comments ---------------------------------------------------------------------------

PUBLISHED, HELD, HIDDEN, REJECTED = "PUBLISHED", "HELD", "HIDDEN", "REJECTED"
COMMENT_STATUSES = (PUBLISHED, HELD, HIDDEN, REJECTED)
REVIEW_STATUSES = (HELD, HIDDEN)
COMMENT_MAX = 500
APPROVE, REJECT, HIDE = "APPROVE", "REJECT", "HIDE"
ACTION_TARGET = {APPROVE: PUBLISHED, REJECT: REJECTED, HIDE: HIDDEN}

# A rejected comment stays rejected; everything else may be approved, hidden or rejected.
COMMENT_MACHINE: StateMachine[str] = StateMachine("comment", {
    PUBLISHED: {HIDDEN, REJECTED}, HELD: {PUBLISHED, HIDDEN, REJECTED}, HIDDEN: {PUBLISHED, REJECTED},
    REJECTED: set()}, refused_reason="STATUS_TRANSITION")


@dataclass
class Comment(Aggregate):
    id: str
    merchant_id: str
    version: int
    content_id: str
    member_id: str  # "" once the author's personal data was erased
    text: str
    status: str
    created_ms: int
    matched_words: tuple[str, ...] = ()
    report_count: int = 0
    moderation_reason: str = ""
    moderated_by: str = ""
    idempotency_key: str = ""

    @classmethod
    def post(cls, comment_id: str, merchant_id: str, content_id: str, member_id: str, text: str,
             words: WordFilter, now_ms: int, idempotency_key: str) -> "Comment":
        """A new comment: HELD when it holds a sensitive word, PUBLISHED otherwise."""
        text = text.strip()
        hits = tuple(words.matches(text))
        return cls(id=comment_id, merchant_id=merchant_id, version=1, content_id=content_id, member_id=member_id,
                   text=text, status=HELD if hits else PUBLISHED, created_ms=now_ms, matched_words=hits,
                   idempotency_key=idempotency_key)

    def visible_to(self, member_id: str) -> bool:
        """Members see published comments, and their own held or hidden ones."""
        if self.status == PUBLISHED:
            return True
        return bool(member_id) and member_id == self.member_id and self.status in (HELD, HIDDEN)

    def moderate(self, action: str, reason: str, staff_id: str) -> bool:
        """Staff decision; False when the comment is in that state already (nothing to save)."""
        target = ACTION_TARGET[action]
        if COMMENT_MACHINE.decide(self.status, target) is Move.REPEAT:
            return False
        COMMENT_MACHINE.require(self.status, target)
        self.status, self.moderation_reason, self.moderated_by = target, reason.strip(), staff_id
        return True


def comment_count_change(before: str, after: str) -> int:
    """How a status move changes the content's published-comment count."""
    return (after == PUBLISHED) - (before == PUBLISHED)


def hides_at(report_count: int, threshold: int) -> bool:
    return report_count >= threshold


# ---- share codes ------------------------------------------------------------------------

# No 0/O, 1/I/L: read aloud or typed from a poster, a code is never ambiguous.
SHARE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
SHARE_CODE_LENGTH = 10  # 31^10 ≈ 8·10^14 codes; WeChat's QR scene allows 32 characters
SHARE_CODE_MAX = 32
CONTENT, PRODUCT, PERSONA, LIVE_SESSION = "CONTENT", "PRODUCT", "PERSONA", "LIVE_SESSION"
TARGET_PREFIX = {CONTENT: "cnt", PRODUCT: "prd", PERSONA: "per", LIVE_SESSION: "liv"}


def new_share_code(choice=secrets.choice) -> str:
    return "".join(choice(SHARE_ALPHABET) for _ in range(SHARE_CODE_LENGTH))


def is_share_code(code: str) -> bool:
    return len(code) == SHARE_CODE_LENGTH and all(c in SHARE_ALPHABET for c in code)


@dataclass(frozen=True)
class ShareTarget:
    kind: str  # one of TARGET_PREFIX
    target_id: str
    persona_id: str = ""
    content_id: str = ""
    product_id: str = ""
    live_session_id: str = ""


@dataclass(frozen=True)
class ShareCode:
    code: str
    merchant_id: str
    target: ShareTarget
    sharer_kind: str  # "member" or "staff"
    sharer_id: str  # "" once a member sharer's personal data was erased
    created_ms: int
    day: str
    click_count: int = 0

    @property
    def dedup_key(self) -> str:
        """One code per sharer, target and business day: sharing twice gives the same code."""
        return share_key(self.merchant_id, self.sharer_kind, self.sharer_id, self.target, self.day)


def share_key(merchant_id: str, sharer_kind: str, sharer_id: str, target: ShareTarget, day: str) -> str:
    return ":".join((merchant_id, sharer_kind, sharer_id, target.kind, target.target_id, target.persona_id, day))


DAY_MS = 86_400_000


def in_window(since_ms: int, now_ms: int, window_days: int) -> bool:
    """Whether an order at `now_ms` is still attributed to a code opened (or issued) at
    `since_ms`: within `window_days` whole days after it, both ends included."""
    return since_ms <= now_ms <= since_ms + window_days * DAY_MS


# ---- product events ---------------------------------------------------------------------

MAX_EVENTS = 50
VIEW, CLICK = "VIEW", "CLICK"
EVENT_MAX_AGE_MS = DAY_MS


@dataclass(frozen=True)
class ProductEvent:
    client_event_id: str
    kind: str  # VIEW or CLICK
    product_id: str
    persona_id: str = ""
    content_id: str = ""
    live_session_id: str = ""
    occurred_ms: int = 0  # 0: now


def event_time(occurred_ms: int, now_ms: int) -> int:
    """The time an event is counted at: the client's, unless unset or in the future."""
    return now_ms if not occurred_ms or occurred_ms > now_ms else occurred_ms


def click_id(member_id: str, event: ProductEvent) -> str:
    """The id the funnels count a product click once by (the member's own client event id);
    empty for a view, which the funnels count once per member and day."""
    if event.kind == VIEW:
        return ""
    return f"{member_id}-{event.client_event_id}"


@dataclass(frozen=True)
class MemberEngagement:
    """What engagement holds of one member (their personal-data export)."""
    views: list[dict] = field(default_factory=list)
    likes: list[dict] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)
    share_codes: list[dict] = field(default_factory=list)
    share_opens: list[dict] = field(default_factory=list)
