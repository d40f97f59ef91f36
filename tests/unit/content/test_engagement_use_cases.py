"""Engagement use cases against the in-memory fakes: unique views, idempotent likes,
comments and their review, share codes and their window, product events into the funnels,
and a member's export and erasure."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from siyu_kit.errors import (Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
                             Unauthenticated)
from siyu_kit.ids import new_id
from tests.fakes.content import FakeContents, FakeFunnels, FakePersonas, FakeProducts, caller
from tests.fakes.engagement import FakeAudit, FakeComments, FakeReactions, FakeSettings, FakeShareCodes

from services.content.application.contents import ContentUseCases
from services.content.application.engagement import EngagementUseCases
from services.content.application.funnels import FunnelUseCases
from services.content.application.personas import PersonaUseCases
from services.content.domain import engagement as rules
from services.content.domain.contents import Content, ContentFields
from services.content.domain.engagement import EngagementSettings, ProductEvent
from services.content.domain.personas import Persona, PersonaFields

MCH, OTHER = new_id("mch"), new_id("mch")
# 2026-12-01 15:59:59.000 UTC is 23:59:59 in Shanghai: the last second of that business day.
LAST_SECOND = int(datetime(2026, 12, 1, 15, 59, 59, tzinfo=timezone.utc).timestamp() * 1000)


class Clock:
    def __init__(self, ms: int = LAST_SECOND - 3_600_000):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class World:
    def __init__(self):
        self.clock = Clock()
        self.personas, self.contents = FakePersonas(), FakeContents()
        self.reactions, self.comments, self.settings = FakeReactions(), FakeComments(), FakeSettings()
        self.audit, self.shares, self.funnel_store = FakeAudit(), FakeShareCodes(), FakeFunnels()
        self.product = new_id("prd")
        contents = ContentUseCases(self.contents, self.personas)
        self.funnels = FunnelUseCases(self.funnel_store, PersonaUseCases(self.personas), contents)
        self.cases = EngagementUseCases(self.reactions, self.comments, self.settings, self.audit, self.shares,
                                        self.contents, self.personas, funnel_cases=self.funnels,
                                        products=FakeProducts(self.product), clock=self.clock)
        self.persona = Persona(new_id("per"), MCH, 1, PersonaFields("xiaomei", "小美"), 0)
        self.personas.items[self.persona.id] = self.persona
        self.content = self._content("PUBLISHED")
        self.draft = self._content("DRAFT")

    def _content(self, status: str) -> Content:
        c = Content(new_id("cnt"), MCH, 1, ContentFields(new_id("c")[-8:], self.persona.id, "ARTICLE", "t"), status)
        self.contents.items[c.id] = c
        return c

    def run(self, coro):
        return asyncio.run(coro)

    def as_member(self, member_id: str, merchant_id: str = MCH):
        return caller(merchant_id, channel="H5", member_id=member_id)

    def as_staff(self, *roles: str, merchant_id: str = MCH):
        return caller(merchant_id, staff_id="stf_1", roles=roles or ("OPERATOR",))

    def funnel(self, dimension: str, ref_id: str):
        return self.run(self.funnel_store.load(MCH, dimension, ref_id)).counters


@pytest.fixture
def w() -> World:
    return World()


M1, M2, M3, M4 = (new_id("mem") for _ in range(4))


# ---- views ------------------------------------------------------------------------------

def test_a_view_counts_once_per_member_and_day_and_feeds_unique_viewers(w):
    with w.as_member(M1):
        assert w.run(w.cases.view(w.content.id)) == (True, 1)
        assert w.run(w.cases.view(w.content.id)) == (False, 1)
    with w.as_member(M2):
        assert w.run(w.cases.view(w.content.id)) == (True, 2)
    w.clock.ms = LAST_SECOND + 1000  # the next business day in Shanghai
    with w.as_member(M1):
        assert w.run(w.cases.view(w.content.id)) == (True, 3)
    assert w.funnel("content", w.content.id).unique_viewers == 3
    assert w.funnel("persona", w.persona.id).unique_viewers == 3


def test_a_repeat_view_finishes_a_funnel_count_a_crash_cut_short(w):
    with w.as_member(M1):
        w.run(w.reactions.add_view(MCH, w.content.id, M1, "2026-12-01", w.clock.ms))  # the view, then a crash
        assert w.run(w.cases.view(w.content.id)) == (False, 1)
        w.run(w.cases.view(w.content.id))
    assert w.funnel("content", w.content.id).unique_viewers == 1


def test_a_member_viewing_two_items_of_a_persona_is_one_persona_viewer_that_day(w):
    other = w._content("PUBLISHED")
    with w.as_member(M1):
        w.run(w.cases.view(w.content.id))
        w.run(w.cases.view(other.id))
    assert w.funnel("persona", w.persona.id).unique_viewers == 1
    assert w.funnel("content", other.id).unique_viewers == 1


def test_views_of_drafts_other_merchants_and_bad_ids_are_refused_and_count_nothing(w):
    with w.as_member(M1):
        with pytest.raises(NotFound):
            w.run(w.cases.view(w.draft.id))
        with pytest.raises(InvalidArgument) as bad:
            w.run(w.cases.view("cnt_nope"))
        assert [v.field for v in bad.value.violations] == ["content_id"]
    with w.as_member(M1, merchant_id=OTHER), pytest.raises(NotFound):
        w.run(w.cases.view(w.content.id))
    with w.as_staff(), pytest.raises(Unauthenticated):
        w.run(w.cases.view(w.content.id))
    assert w.reactions.views == {}


# ---- likes ------------------------------------------------------------------------------

def test_like_is_a_state_not_a_flip_so_retries_change_nothing(w):
    with w.as_member(M1):
        assert w.run(w.cases.set_like(w.content.id, True)) == (True, 1)
        assert w.run(w.cases.set_like(w.content.id, True)) == (False, 1)
    with w.as_member(M2):
        assert w.run(w.cases.set_like(w.content.id, True)) == (True, 2)
    with w.as_member(M1):
        assert w.run(w.cases.set_like(w.content.id, False)) == (True, 1)
        assert w.run(w.cases.set_like(w.content.id, False)) == (False, 1)
    with w.as_member(M3):
        # Unliking what was never liked changes nothing.
        assert w.run(w.cases.set_like(w.content.id, False)) == (False, 1)


# ---- comments ---------------------------------------------------------------------------

def _words(w, *words: str, threshold: int = 3) -> None:
    with w.as_staff():
        w.run(w.cases.update_settings(EngagementSettings(words, threshold, 7), 0))


def test_a_comment_with_a_blocked_word_is_held_and_only_its_author_sees_it(w):
    _words(w, "微信")
    with w.as_member(M1):
        held = w.run(w.cases.post_comment(w.content.id, "加我微信", "k1"))
        clean = w.run(w.cases.post_comment(w.content.id, "好看", "k2"))
        assert (held.status, clean.status) == (rules.HELD, rules.PUBLISHED)
        assert {c.id for c in w.run(w.cases.list_comments(w.content.id, 0, ""))[0]} == {held.id, clean.id}
    with w.as_member(M2):
        assert [c.id for c in w.run(w.cases.list_comments(w.content.id, 0, ""))[0]] == [clean.id]
    with caller(MCH, channel="H5"):
        assert [c.id for c in w.run(w.cases.list_comments(w.content.id, 0, ""))[0]] == [clean.id]
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].comments == 1


def test_posting_again_with_the_same_key_returns_the_same_comment(w):
    with w.as_member(M1):
        first = w.run(w.cases.post_comment(w.content.id, "好看", "k1"))
        again = w.run(w.cases.post_comment(w.content.id, "something else", "k1"))
    assert again.id == first.id and len(w.comments.items) == 1
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].comments == 1


def test_comment_list_pages_with_a_cursor(w):
    with w.as_member(M1):
        ids = [w.run(w.cases.post_comment(w.content.id, f"第{i}条", f"k{i}")).id for i in range(5)]
        page, token = w.run(w.cases.list_comments(w.content.id, 2, ""))
        seen = [c.id for c in page]
        while token:
            page, token = w.run(w.cases.list_comments(w.content.id, 2, token))
            seen += [c.id for c in page]
        assert seen == sorted(ids, reverse=True)
        with pytest.raises(InvalidArgument) as bad:
            w.run(w.cases.list_comments(w._content("PUBLISHED").id, 2, w.run(
                w.cases.list_comments(w.content.id, 2, ""))[1]))
        assert [v.field for v in bad.value.violations] == ["page_token"]


def test_reports_once_per_member_and_the_threshold_hides(w):
    _words(w, threshold=2)
    with w.as_member(M1):
        comment = w.run(w.cases.post_comment(w.content.id, "好看", "k1"))
        with pytest.raises(FailedPrecondition) as own:
            w.run(w.cases.report(comment.id, ""))
        assert own.value.reason == "COMMENT_OWN_REPORT"
    with w.as_member(M2):
        assert w.run(w.cases.report(comment.id, "spam")) == (True, False)
        assert w.run(w.cases.report(comment.id, "spam")) == (False, False)
    with w.as_member(M3):
        assert w.run(w.cases.report(comment.id, "spam")) == (True, True)
    with w.as_member(M4), pytest.raises(NotFound):
        # Hidden: no longer shown to other members, so not reportable either.
        w.run(w.cases.report(comment.id, "spam"))
    assert w.comments.items[comment.id].report_count == 2
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].comments == 0


def test_staff_review_held_comments_and_moderate_with_an_audit(w):
    _words(w, "刷单")
    with w.as_member(M1):
        held = [w.run(w.cases.post_comment(w.content.id, f"刷单{i}", f"k{i}")) for i in range(3)]
    with w.as_staff():
        page, token = w.run(w.cases.review_page("", 2, ""))
        assert [c.id for c in page] == [c.id for c in held[:2]] and token
        assert [c.id for c in w.run(w.cases.review_page("", 2, token))[0]] == [held[2].id]
        approved, changed = w.run(w.cases.moderate(held[0].id, rules.APPROVE, "ok in context"))
        assert approved.status == rules.PUBLISHED and changed
        assert w.run(w.cases.moderate(held[0].id, rules.APPROVE, "ok")) [1] is False
        w.run(w.cases.moderate(held[1].id, rules.REJECT, "spam"))
        with pytest.raises(FailedPrecondition):
            w.run(w.cases.moderate(held[1].id, rules.APPROVE, "undo"))
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].comments == 1
    actions = [e.action for e in w.audit.entries]
    assert actions == ["ENGAGEMENT_SETTINGS_UPDATED", "COMMENT_APPROVE", "COMMENT_REJECT"]
    assert w.audit.entries[1].before == {"status": rules.HELD}


def test_moderation_retries_a_lost_race_and_counts_once(w):
    with w.as_member(M1):
        comment = w.run(w.cases.post_comment(w.content.id, "好看", "k1"))
    w.comments.stale_saves = 1
    with w.as_staff():
        hidden, changed = w.run(w.cases.moderate(comment.id, rules.HIDE, "off-topic"))
    assert hidden.status == rules.HIDDEN and changed
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].comments == 0


def test_moderation_needs_an_operator_and_the_merchants_comment(w):
    with w.as_member(M1):
        comment = w.run(w.cases.post_comment(w.content.id, "好看", "k1"))
    with w.as_staff("GUIDE"), pytest.raises(PermissionDenied):
        w.run(w.cases.moderate(comment.id, rules.HIDE, "x"))
    with w.as_staff(merchant_id=OTHER), pytest.raises(NotFound):
        w.run(w.cases.moderate(comment.id, rules.HIDE, "x"))
    assert w.comments.items[comment.id].status == rules.PUBLISHED


def test_settings_are_versioned(w):
    _words(w, "微信")
    with w.as_staff():
        with pytest.raises(Conflict) as stale:
            w.run(w.cases.update_settings(EngagementSettings(("x",), 3, 7), 0))
        assert stale.value.reason == "VERSION_CONFLICT"
        assert w.run(w.cases.update_settings(EngagementSettings(("x",), 3, 7), 1))[1] == 2
        assert w.run(w.cases.get_settings()) == (EngagementSettings(("x",), 3, 7), 2)


# ---- share codes ------------------------------------------------------------------------

def test_sharing_content_gives_one_code_a_day_per_sharer_and_target(w):
    with w.as_member(M1):
        share, created = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
        again, created_again = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
    assert created and not created_again and again.code == share.code
    assert rules.is_share_code(share.code)
    assert (share.target.persona_id, share.target.content_id, share.sharer_id) == (w.persona.id, w.content.id, M1)
    with w.as_staff("GUIDE"):
        staff_share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=True))
    assert staff_share.code != share.code and staff_share.sharer_kind == "staff"
    assert w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id].shares == 2


def test_a_colliding_code_is_drawn_again(w):
    w.shares.collisions = 2
    with w.as_member(M1):
        share, created = w.run(w.cases.share(rules.PERSONA, w.persona.id, "", as_staff=False))
    assert created and share.code in w.shares.codes


def test_share_targets_must_exist_in_the_merchant(w):
    with w.as_member(M1):
        for kind, target in ((rules.CONTENT, w.draft.id), (rules.PERSONA, new_id("per")),
                             (rules.PRODUCT, new_id("prd"))):
            with pytest.raises(NotFound) as missing:
                w.run(w.cases.share(kind, target, "", as_staff=False))
            assert missing.value.reason == "SHARE_TARGET_NOT_FOUND"
        with pytest.raises(InvalidArgument) as bad:
            w.run(w.cases.share(rules.CONTENT, w.persona.id, "", as_staff=False))
        assert [v.field for v in bad.value.violations] == ["target_id"]
        product, _ = w.run(w.cases.share(rules.PRODUCT, w.product, w.persona.id, as_staff=False))
    assert (product.target.product_id, product.target.persona_id) == (w.product, w.persona.id)
    with w.as_member(M1, merchant_id=OTHER), pytest.raises(NotFound):
        w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))


def test_opening_counts_one_click_per_opener_and_day(w):
    with w.as_member(M1):
        share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
    with w.as_member(M2):
        assert w.run(w.cases.open_share(share.code))[1] is True
        assert w.run(w.cases.open_share(share.code))[1] is False
    with caller(MCH, channel="H5", client_address="10.0.0.9"):
        opened, counted = w.run(w.cases.open_share(share.code))
    assert counted and opened.click_count == 2
    assert len(w.shares.opens) == 3  # every open is logged
    with caller(OTHER, channel="H5"), pytest.raises(NotFound) as missing:
        w.run(w.cases.open_share(share.code))
    assert missing.value.reason == "SHARE_CODE_NOT_FOUND"


def test_the_attribution_window_runs_from_the_members_last_open(w):
    _words(w)  # defaults: a 7-day window
    with w.as_member(M1):
        share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
    w.clock.ms += 3 * rules.DAY_MS
    with w.as_member(M2):
        w.run(w.cases.open_share(share.code))
    with caller(MCH, service="order"):
        w.clock.ms += 7 * rules.DAY_MS
        check = w.run(w.cases.check_share(share.code, M2))
        assert check.found and check.in_window and check.code.target.content_id == w.content.id
        w.clock.ms += 1
        assert not w.run(w.cases.check_share(share.code, M2)).in_window
        # A member who never opened it: the window runs from the code's issue, long past.
        assert not w.run(w.cases.check_share(share.code, M3)).in_window
        assert w.run(w.cases.check_share("ZZZZZZZZZZ", M2)).found is False
        # Whatever an order carries that is not one of our codes is not found, never an error.
        assert w.run(w.cases.check_share("x" * 64, M2)).found is False
        assert w.run(w.cases.check_share("", M2)).found is True
    with caller(OTHER, service="order"):
        assert w.run(w.cases.check_share(share.code, M2)).found is False


# ---- product events ---------------------------------------------------------------------

def _event(i: int, kind: str = rules.CLICK, **where) -> ProductEvent:
    return ProductEvent(f"evt-{i:06d}", kind, new_id("prd"), **where)


def test_product_events_feed_clicks_and_replays_count_once(w):
    where = {"persona_id": w.persona.id, "content_id": w.content.id}
    batch = [_event(i, **where) for i in range(3)] + [_event(9, rules.VIEW, **where)]
    with w.as_member(M1):
        assert w.run(w.cases.product_events(batch)) == (4, 0)
        assert w.run(w.cases.product_events(batch)) == (0, 4)
    with w.as_member(M2):
        # The same client ids from another member are other events.
        assert w.run(w.cases.product_events(batch[:1])) == (1, 0)
    content = w.funnel("content", w.content.id)
    assert (content.product_clicks, content.unique_viewers) == (4, 1)
    assert w.funnel("persona", w.persona.id).product_clicks == 4


def test_product_event_batches_are_bounded_and_checked_item_by_item(w):
    with w.as_member(M1):
        with pytest.raises(InvalidArgument) as big:
            w.run(w.cases.product_events([_event(i) for i in range(rules.MAX_EVENTS + 1)]))
        assert [v.field for v in big.value.violations] == ["events"]
        with pytest.raises(InvalidArgument) as empty:
            w.run(w.cases.product_events([]))
        assert [v.field for v in empty.value.violations] == ["events"]
        bad = [ProductEvent("short", "SWIPE", "prd_x", content_id=w.persona.id,
                            occurred_ms=w.clock.ms - rules.DAY_MS - 1), _event(1), _event(1)]
        with pytest.raises(InvalidArgument) as items:
            w.run(w.cases.product_events(bad))
        assert {v.field for v in items.value.violations} == {
            "events[0].client_event_id", "events[0].kind", "events[0].product_id", "events[0].content_id",
            "events[0].occurred_at", "events[2].client_event_id"}
    assert w.funnel_store.buckets == {}


# ---- personal data ----------------------------------------------------------------------

def test_export_and_erasure_of_a_member(w):
    _words(w, "微信")
    with w.as_member(M1):
        w.run(w.cases.view(w.content.id))
        w.run(w.cases.set_like(w.content.id, True))
        published = w.run(w.cases.post_comment(w.content.id, "好看", "k1"))
        w.run(w.cases.post_comment(w.content.id, "加微信", "k2"))
        share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
        w.run(w.cases.open_share(share.code))
    with w.as_member(M2):
        w.run(w.cases.set_like(w.content.id, True))
        w.run(w.cases.report(published.id, "meh"))
    exported = w.run(w.cases.export_member(MCH, M1))
    assert [len(exported[k]) for k in ("views", "likes", "comments", "comment_reports", "share_codes",
                                       "share_opens")] == [1, 1, 2, 0, 1, 1]
    assert w.run(w.cases.export_member(MCH, M2))["comment_reports"][0]["comment_id"] == published.id

    w.run(w.cases.erase_member(MCH, M1))
    w.run(w.cases.erase_member(MCH, M1))  # a rerun changes nothing more
    after = w.run(w.cases.export_member(MCH, M1))
    assert all(not rows for rows in after.values())
    counts = w.run(w.reactions.counts(MCH, [w.content.id]))[w.content.id]
    assert (counts.likes, counts.comments, counts.views) == (1, 0, 1)
    erased = w.comments.items[published.id]
    assert (erased.member_id, erased.text, erased.status) == ("", "", rules.REJECTED)
    # The code still works for orders; it no longer names its sharer.
    assert w.shares.codes[share.code].sharer_id == ""
    with caller(MCH, service="order"):
        assert w.run(w.cases.check_share(share.code, M2)).found


# ---- share codes that bind -------------------------------------------------------------

def test_a_signed_in_open_tells_its_sharer_once_per_open_and_an_anonymous_one_tells_nothing(w):
    from services.content.domain.share_opens import ShareCodeWasOpened
    with w.as_member(M1):
        share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
    with w.as_member(M2):
        w.run(w.cases.open_share(share.code))
        w.run(w.cases.open_share(share.code))  # a second open the same day: told again
    with caller(MCH, channel="H5", client_address="10.0.0.9"):
        w.run(w.cases.open_share(share.code))
    with w.as_staff("GUIDE"):
        staff_share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=True))
    with w.as_member(M3):
        w.run(w.cases.open_share(staff_share.code))
    told = [o["events"] for o in w.shares.opens]
    assert told == [[ShareCodeWasOpened(share.code, M1, M2, w.clock.ms)]] * 2 + [[]] + [
        [ShareCodeWasOpened(staff_share.code, "stf_1", M3, w.clock.ms)]]
    # The order service learns who shared a code in its window.
    with caller(MCH, service="order"):
        assert w.run(w.cases.check_share(share.code, M2)).code.sharer_id == M1


def test_a_code_whose_member_sharer_was_erased_binds_no_one(w):
    with w.as_member(M1):
        share, _ = w.run(w.cases.share(rules.CONTENT, w.content.id, "", as_staff=False))
    w.run(w.cases.erase_member(MCH, M1))
    assert w.shares.codes[share.code].sharer_id == ""
    with w.as_member(M2):
        w.run(w.cases.open_share(share.code))
    assert w.shares.opens[-1]["events"] == []
