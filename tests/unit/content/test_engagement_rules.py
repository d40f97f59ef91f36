"""Engagement rules without storage: the sensitive-word filter, comment moves, share-code
alphabet and length, the attribution window's edges."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, strategies as st

from siyu_kit.errors import FailedPrecondition, Violations

from services.content.domain import engagement as rules
from services.content.domain.engagement import Comment, EngagementSettings, WordFilter

# ---- the sensitive-word filter ----------------------------------------------------------


def test_finds_chinese_words_anywhere_in_the_text():
    f = WordFilter(["微信", "加我", "代购"])
    assert f.matches("想要的加我微信私聊") == ["加我", "微信"]
    assert f.matches("这款面霜很好用") == []


def test_finds_overlapping_and_nested_words_each_once():
    f = WordFilter(["abc", "bcd", "b", "cd"])
    assert f.matches("xabcdx") == ["abc", "b", "bcd", "cd"]
    # Repeats of a word are one hit.
    assert WordFilter(["刷单"]).matches("刷单刷单刷单") == ["刷单"]
    # Nested Chinese words: 返现 inside 好评返现.
    assert WordFilter(["好评返现", "返现"]).matches("五星好评返现哦") == ["好评返现", "返现"]


def test_matching_ignores_case_and_full_width_forms():
    f = WordFilter(["VX", "qq"])
    assert f.matches("加 vx 或 ＱＱ") == ["vx", "qq"]


def test_empty_list_and_blank_words_match_nothing():
    assert WordFilter([]).matches("anything") == []
    assert WordFilter(["  ", ""]).matches("  ") == []
    assert WordFilter(["a"]).matches("") == []


@given(st.lists(st.text(alphabet="abc微信", min_size=1, max_size=4), max_size=8),
       st.text(alphabet="abc微信 ", max_size=40))
def test_matches_are_exactly_the_words_the_text_contains(words, text):
    found = WordFilter(words).matches(text)
    assert sorted(found) == sorted({w for w in words if w.strip() and w.strip() in text})


def test_settings_normalize_words_and_refuse_bad_values():
    s = EngagementSettings((" 微信 ", "VX", "vx", ""), 3, 7).normalized()
    assert s.sensitive_words == ("vx", "微信")
    v = Violations()
    rules.check_settings(EngagementSettings(("x" * 33, " "), 0, 91), -1, v)
    assert {x.field for x in v.items} == {"settings.sensitive_words[0]", "settings.sensitive_words[1]",
                                          "settings.report_hide_threshold", "settings.attribution_window_days",
                                          "expected_version"}


# ---- comments ---------------------------------------------------------------------------

def _comment(text: str, words=("微信",)) -> Comment:
    return Comment.post("cmt_1", "mch_1", "cnt_1", "mem_author", text, WordFilter(words), 1000, "k1")


def test_a_comment_with_a_sensitive_word_is_held_and_shown_to_its_author_only():
    held = _comment("加我微信")
    assert held.status == rules.HELD and held.matched_words == ("微信",)
    assert held.visible_to("mem_author") and not held.visible_to("mem_other") and not held.visible_to("")
    clean = _comment("真好看")
    assert clean.status == rules.PUBLISHED and clean.visible_to("") and clean.visible_to("mem_other")


def test_moderation_moves_and_their_repeats():
    c = _comment("加我微信")
    assert c.moderate(rules.APPROVE, "fine in context", "stf_1") and c.status == rules.PUBLISHED
    assert not c.moderate(rules.APPROVE, "again", "stf_1")
    assert c.moderate(rules.HIDE, "off-topic", "stf_1") and c.status == rules.HIDDEN
    assert c.moderate(rules.REJECT, "spam", "stf_2") and c.status == rules.REJECTED
    assert not c.moderate(rules.REJECT, "spam", "stf_2")
    with pytest.raises(FailedPrecondition) as refused:
        c.moderate(rules.APPROVE, "undo", "stf_1")
    assert refused.value.reason == "STATUS_TRANSITION"


def test_published_count_follows_status_moves():
    assert rules.comment_count_change(rules.HELD, rules.PUBLISHED) == 1
    assert rules.comment_count_change(rules.PUBLISHED, rules.HIDDEN) == -1
    assert rules.comment_count_change(rules.HELD, rules.REJECTED) == 0
    assert rules.hides_at(3, 3) and not rules.hides_at(2, 3)


# ---- share codes ------------------------------------------------------------------------

def test_share_codes_use_the_unambiguous_alphabet_and_fit_a_qr_scene():
    assert not set(rules.SHARE_ALPHABET) & set("01ILO")
    assert len(set(rules.SHARE_ALPHABET)) == len(rules.SHARE_ALPHABET) == 31
    rng = random.Random(7)
    for _ in range(500):
        code = rules.new_share_code(rng.choice)
        assert len(code) == rules.SHARE_CODE_LENGTH <= rules.SHARE_CODE_MAX == 32
        assert rules.is_share_code(code)
    assert not rules.is_share_code("ABCDEFGHI0")  # a zero
    assert not rules.is_share_code("abcdefghjk")  # lower case
    assert not rules.is_share_code("ABCDEFGHJ")  # too short


def test_a_sharers_code_of_the_day_is_keyed_by_sharer_target_and_day():
    t = rules.ShareTarget(rules.CONTENT, "cnt_1", persona_id="per_1", content_id="cnt_1")
    a = rules.share_key("mch", "member", "mem_1", t, "2026-12-01")
    assert a == rules.share_key("mch", "member", "mem_1", t, "2026-12-01")
    assert a != rules.share_key("mch", "member", "mem_1", t, "2026-12-02")
    assert a != rules.share_key("mch", "staff", "mem_1", t, "2026-12-01")
    assert a != rules.share_key("mch", "member", "mem_1", rules.ShareTarget(rules.PERSONA, "per_1", "per_1"),
                                "2026-12-01")


DAY = rules.DAY_MS


@pytest.mark.parametrize("offset, inside", [
    (0, True), (1, True), (7 * DAY - 1, True), (7 * DAY, True), (7 * DAY + 1, False), (-1, False)])
def test_attribution_window_edges(offset, inside):
    opened = 1_780_000_000_000
    assert rules.in_window(opened, opened + offset, 7) is inside


@given(st.integers(min_value=0, max_value=10**13), st.integers(min_value=-10**10, max_value=10**11),
       st.integers(min_value=1, max_value=90))
def test_attribution_window_is_the_closed_interval(opened, offset, days):
    assert rules.in_window(opened, opened + offset, days) is (0 <= offset <= days * DAY)


def test_product_event_ids_for_the_funnels():
    view = rules.ProductEvent("e1234567", rules.VIEW, "prd_1")
    click = rules.ProductEvent("e1234567", rules.CLICK, "prd_1")
    # A view is counted by the member (one viewer a day); a click by the member's own event.
    assert rules.click_id("mem_1", view) == ""
    assert rules.click_id("mem_1", click) != rules.click_id("mem_2", click)
    assert rules.click_id("mem_1", click) == rules.click_id("mem_1", click)
    assert rules.event_time(0, 50) == 50 and rules.event_time(60, 50) == 50 and rules.event_time(40, 50) == 40
