"""A member's feed: content of the personas they follow mixed with recommended content
(recent content of the personas they do not follow), newest first in each stream.

A page takes up to FOLLOWED_SHARE of its items from the followed stream and the rest from
the recommended one; when one stream runs short the other fills the page. Each stream is
read below its own position (a content item's feed key: publish time, then id), and the
page token carries both positions. Content published later has a larger key than any
position a token holds, so it never shifts a later page: it shows on a fresh first page.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

FOLLOWED, RECOMMENDED = "FOLLOWED", "RECOMMENDED"
# Three in four items of a page come from followed personas while they have content.
FOLLOWED_SHARE_NUM, FOLLOWED_SHARE_DEN = 3, 4
# A feed key: 15-digit publish time in ms, ":", a cnt_ id.
KEY = re.compile(r"^[0-9]{15}:cnt_[0-9A-HJKMNP-TV-Z]{26}$")

T = TypeVar("T")


@dataclass(frozen=True)
class Position:
    """Where each stream stopped; "" for a stream not read yet."""
    followed: str = ""
    recommended: str = ""

    def as_text(self) -> str:
        return f"{self.followed}|{self.recommended}"

    @classmethod
    def parse(cls, text: str) -> "Position | None":
        """None when the text is not a position a page issued."""
        followed, sep, recommended = text.partition("|")
        if not sep or any(part and not KEY.match(part) for part in (followed, recommended)):
            return None
        return cls(followed, recommended)


# A page token's position: both streams' keys.
POSITION = re.compile(r"^(?:[0-9]{15}:cnt_[0-9A-HJKMNP-TV-Z]{26})?\|(?:[0-9]{15}:cnt_[0-9A-HJKMNP-TV-Z]{26})?$")


@dataclass(frozen=True)
class Candidate(Generic[T]):
    key: str
    item: T


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[tuple[T, str]]  # (item, reason), newest first
    next: Position | None  # None: the last page


def quota(size: int) -> int:
    """How many of a page's items the followed stream may give while the other has some."""
    return max(1, size * FOLLOWED_SHARE_NUM // FOLLOWED_SHARE_DEN) if size > 1 else size


def ceiling(now_ms: int) -> str:
    """The position above everything published up to `now_ms`: a first page's streams are
    bounded by it from the second page on, so a stream that was empty on the first page
    does not pick up later content either."""
    return f"{now_ms:015d}:cnt_{'Z' * 26}"


def mix(followed: list[Candidate[T]], recommended: list[Candidate[T]], size: int, at: Position,
        top: str, recommended_scanned_to: str = "") -> Page[T]:
    """One page from the two streams, each given newest first below its position in `at`
    (below `top` for a stream without one) and read with size + 1 items when it has them,
    so that "more" is known. `recommended_scanned_to` is set when the recommended read
    stopped before the end without finding size + 1 items (it skips followed personas'
    content and scans a bounded number): the last key it looked at."""
    take_followed = min(len(followed), quota(size))
    take_recommended = min(len(recommended), size - take_followed)
    take_followed = min(len(followed), size - take_recommended)
    shown_f, shown_r = followed[:take_followed], recommended[:take_recommended]
    more_f = len(followed) > take_followed
    more_r = len(recommended) > take_recommended or bool(recommended_scanned_to)
    items = sorted([(c, FOLLOWED) for c in shown_f] + [(c, RECOMMENDED) for c in shown_r],
                   key=lambda pair: pair[0].key, reverse=True)
    pairs = [(c.item, reason) for c, reason in items]
    if not (more_f or more_r):
        return Page(pairs, None)
    if len(shown_r) == len(recommended) and recommended_scanned_to:
        next_r = recommended_scanned_to  # everything it found is shown; go on where it stopped
    else:
        next_r = shown_r[-1].key if shown_r else (at.recommended or top)
    next_f = shown_f[-1].key if shown_f else (at.followed or top)
    return Page(pairs, Position(next_f, next_r))
