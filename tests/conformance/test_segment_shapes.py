"""The query and update shapes of member statistics and facts
(services/member/adapters/segment_store.py): an order event applied once per cause with
`$inc` into day buckets, `$min`/`$max` of the paid times, expired buckets dropped under a
version guard, facts never overwritten by older statistics, and every segment query shape
— checked against the pure evaluator over random members (the query and the rule agree)."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pymongo import ASCENDING

from services.member.adapters.segment_store import (FACTS_DEFAULTS, add_targets, apply_event, apply_follow, changed, consenting,
                                                    count_matching, flat_filter, ids_matching, page_matching, put_facts,
                                                    put_facts_many, retag, settle, settle_many, stats_for, stats_of,
                                                    targets_page)
from services.member.domain import segments as rules
from services.member.domain.segments import Condition, Rule
from tests.support import new_merchant_id

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
MS = int(NOW.timestamp() * 1000)


def test_an_event_applies_once_per_cause_into_its_day(coll):
    m = new_merchant_id()
    assert apply_event(coll, m, "mem_1", "ord_1:paid", "20260510", 1, 5000, MS - 3 * rules.DAY_MS, "WXMP", 0)
    assert not apply_event(coll, m, "mem_1", "ord_1:paid", "20260510", 1, 5000, MS - 3 * rules.DAY_MS, "WXMP", 0)
    assert apply_event(coll, m, "mem_1", "ord_2:paid", "20260510", 1, 3000, MS - 9 * rules.DAY_MS, "H5", 0)
    assert apply_event(coll, m, "mem_1", "ord_3:paid", "20250101", 1, 7000, MS - 500 * rules.DAY_MS, "WXMP", 0)
    assert apply_event(coll, m, "mem_1", "ord_1:refund:rf_1", "20260510", 0, -2000, 0, "", 1)
    assert not apply_event(coll, m, "mem_1", "ord_1:refund:rf_1", "20260510", 0, -2000, 0, "", 1)
    stats = stats_of(coll.find_one({"_id": f"{m}:mem_1"}))
    assert stats.days == {"20260510": {"o": 2, "a": 6000}, "20250101": {"o": 1, "a": 7000}}
    assert (stats.first_paid_ms, stats.last_paid_ms) == (MS - 500 * rules.DAY_MS, MS - 3 * rules.DAY_MS)
    assert (stats.paid_orders, stats.refunds, stats.refunded_amount, stats.version) == (3, 1, 2000, 4)
    assert stats.channels == {"WXMP": 2, "H5": 1}
    assert stats.window(NOW) == (2, 6000)


def test_a_follow_mark_is_stored_only_when_newer_in_one_guarded_update(coll):
    m = new_merchant_id()
    mark = rules.follow_mark
    assert apply_follow(coll, m, "mem_1", "per_a", mark(MS + 10, False))   # the unfollow arrives first
    assert not apply_follow(coll, m, "mem_1", "per_a", mark(MS, True))     # then its older follow
    assert not apply_follow(coll, m, "mem_1", "per_a", mark(MS + 10, False))  # and again
    assert apply_follow(coll, m, "mem_1", "per_b", mark(MS, True))
    assert apply_event(coll, m, "mem_1", "ord_1:paid", "20260510", 1, 500, MS, "", 0)  # orders beside follows
    assert apply_follow(coll, m, "mem_2", "per_a", mark(MS, True))         # a member's first statistics
    stats = stats_for(coll, m, ["mem_1", "mem_2"])
    assert stats["mem_1"].follows == {"per_a": mark(MS + 10, False), "per_b": mark(MS, True)}
    assert (stats["mem_1"].followed_personas(), stats["mem_1"].version, stats["mem_1"].paid_orders) == (
        ["per_b"], 3, 1)
    assert stats["mem_2"].followed_personas() == ["per_a"]
    assert {s.member_id for s in changed(coll, 1000) if s.merchant_id == m} == {"mem_1", "mem_2"}
    # Settled, then a late event changes nothing and leaves the member settled.
    for s in stats.values():
        assert settle(coll, s, [])
    assert not apply_follow(coll, m, "mem_2", "per_a", mark(MS - 1, False))
    assert [s for s in changed(coll, 1000) if s.merchant_id == m] == []


def test_changed_members_are_settled_under_a_version_guard(coll):
    m = new_merchant_id()
    apply_event(coll, m, "mem_1", "ord_1:paid", "20250101", 1, 100, MS - 500 * rules.DAY_MS, "", 0)
    apply_event(coll, m, "mem_1", "ord_2:paid", "20260510", 1, 100, MS, "", 0)
    stats = [s for s in changed(coll, 10) if s.merchant_id == m]
    assert len(stats) == 1 and stats[0].expired_days(NOW) == ["20250101"]
    apply_event(coll, m, "mem_1", "ord_3:paid", "20260511", 1, 100, MS, "", 0)  # changed meanwhile
    assert not settle(coll, stats[0], stats[0].expired_days(NOW))
    fresh = [s for s in changed(coll, 10) if s.merchant_id == m][0]
    assert settle(coll, fresh, fresh.expired_days(NOW))
    assert [s for s in changed(coll, 10) if s.merchant_id == m] == []
    after = stats_of(coll.find_one({"_id": f"{m}:mem_1"}))
    assert sorted(after.days) == ["20260510", "20260511"] and after.paid_orders == 3
    assert list(stats_for(coll, m, ["mem_1", "mem_9"])) == ["mem_1"]
    assert stats_for(coll, new_merchant_id(), ["mem_1"]) == {}


def test_facts_are_not_overwritten_by_older_statistics_and_keep_manual_tags(coll):
    m = new_merchant_id()
    assert put_facts(coll, m, "mem_1", 5, {"rfm_r": 5, "auto_tags": ["first-purchase"]})
    assert not put_facts(coll, m, "mem_1", 4, {"rfm_r": 1, "auto_tags": []})
    assert retag(coll, m, ["mem_1", "mem_2"], ["tag_b", "tag_a"], []) == 1   # mem_2 has no facts
    assert retag(coll, m, ["mem_1"], ["tag_a"], []) == 0                      # tagged already
    assert put_facts(coll, m, "mem_1", 5, {"rfm_r": 4, "auto_tags": ["lapsed"]})  # the daily pass
    doc = coll.find_one({"_id": f"{m}:mem_1"})
    assert (doc["rfm_r"], doc["tags"], doc["stats_version"]) == (4, ["lapsed", "tag_a", "tag_b"], 5)
    assert retag(coll, m, ["mem_1"], [], ["tag_b"]) == 1
    doc = coll.find_one({"_id": f"{m}:mem_1"})
    assert (doc["manual_tags"], doc["tags"]) == (["tag_a"], ["lapsed", "tag_a"])
    assert coll.count_documents({"merchant_id": m, "manual_tags": {"$in": ["tag_a"]}}) == 1
    assert coll.count_documents({"merchant_id": m, "manual_tags": {"$in": ["tag_b"]}}) == 0


def test_a_batch_of_statistics_settles_in_one_unordered_bulk_write_under_each_version(coll):
    m = new_merchant_id()
    for member in ("mem_1", "mem_2", "mem_3"):
        apply_event(coll, m, member, "ord_a:paid", "20250101", 1, 100, MS - 500 * rules.DAY_MS, "", 0)
        apply_event(coll, m, member, f"ord_{member}:paid", "20260510", 1, 100, MS, "", 0)
    read = sorted((s for s in changed(coll, 10) if s.merchant_id == m), key=lambda s: s.member_id)
    apply_event(coll, m, "mem_2", "ord_z:paid", "20260511", 1, 100, MS, "", 0)   # mem_2 changed meanwhile
    assert settle_many(coll, [(s, s.expired_days(NOW)) for s in read]) == 2
    assert settle_many(coll, []) == 0
    assert [s.member_id for s in changed(coll, 10) if s.merchant_id == m] == ["mem_2"]
    assert sorted(coll.find_one({"_id": f"{m}:mem_1"})["days"]) == ["20260510"]
    assert sorted(coll.find_one({"_id": f"{m}:mem_2"})["days"]) == ["20250101", "20260510", "20260511"]


def test_a_batch_of_facts_inserts_updates_and_skips_in_one_unordered_bulk_write(coll):
    m = new_merchant_id()
    assert put_facts(coll, m, "mem_1", 3, {"rfm_r": 2, "auto_tags": []})
    assert retag(coll, m, ["mem_1"], ["tag_a"], []) == 1
    assert put_facts(coll, m, "mem_2", 9, {"rfm_r": 5, "auto_tags": []})       # newer than the batch's
    assert put_facts(coll, m, "mem_3", 4, {"rfm_r": 1, "auto_tags": ["lapsed"]})
    before = coll.find_one({"_id": f"{m}:mem_3"})["tags_version"]
    assert put_facts_many(coll, m, [("mem_1", 4, {"rfm_r": 4, "auto_tags": ["lapsed"]}),
                                    ("mem_2", 8, {"rfm_r": 1, "auto_tags": []}),
                                    ("mem_3", 4, {"rfm_r": 1, "auto_tags": ["lapsed"]}),     # as stored
                                    ("mem_4", 1, {"rfm_r": 3, "auto_tags": ["first-purchase"]})]) == 3
    docs = {d["member_id"]: d for d in coll.find({"merchant_id": m})}
    assert (docs["mem_1"]["rfm_r"], docs["mem_1"]["tags"], docs["mem_1"]["stats_version"]) == (
        4, ["lapsed", "tag_a"], 4)
    assert (docs["mem_2"]["rfm_r"], docs["mem_2"]["stats_version"]) == (5, 9)
    assert docs["mem_3"]["tags_version"] == before                               # not written again
    assert {k: docs["mem_4"][k] for k in FACTS_DEFAULTS if k not in ("rfm_r", "tags", "auto_tags", "stats_version")
            } == {k: v for k, v in FACTS_DEFAULTS.items() if k not in ("rfm_r", "tags", "auto_tags", "stats_version")}
    assert (docs["mem_4"]["tags"], docs["mem_4"]["rfm_r"]) == (["first-purchase"], 3)


def test_a_batch_of_facts_that_loses_a_race_writes_the_lost_members_again(coll):
    m = new_merchant_id()
    assert put_facts(coll, m, "mem_1", 1, {"rfm_r": 1, "auto_tags": []})
    real_find = coll.find

    class Racing:
        """The collection, with another writer landing between the batch's read and its write."""
        raced = False

        def __getattr__(self, name):
            return getattr(coll, name)

        def find(self, *args, **kwargs):
            rows = list(real_find(*args, **kwargs))
            if not self.raced:
                self.raced = True
                retag(coll, m, ["mem_1"], ["tag_a"], [])                            # bumps tags_version
                put_facts(coll, m, "mem_2", 1, {"rfm_r": 2, "auto_tags": []})     # inserts first
            return rows

    assert put_facts_many(Racing(), m, [("mem_1", 2, {"rfm_r": 4, "auto_tags": ["lapsed"]}),
                                        ("mem_2", 2, {"rfm_r": 5, "auto_tags": []})]) == 2
    docs = {d["member_id"]: d for d in coll.find({"merchant_id": m})}
    assert (docs["mem_1"]["rfm_r"], docs["mem_1"]["tags"], docs["mem_1"]["stats_version"]) == (
        4, ["lapsed", "tag_a"], 2)
    assert (docs["mem_2"]["rfm_r"], docs["mem_2"]["stats_version"]) == (5, 2)
    assert coll.count_documents({"merchant_id": m}) == 2


# ---- every segment query shape, against the pure evaluator ------------------------------------
TAGS = ["vip", "lapsed", "first-purchase", "b"]
GROUP_NAMES = sorted(rules.GROUPS.values())[:3] + [""]
PERSONAS = ["per_a", "per_b", "per_c"]

facts_strategy = st.fixed_dictionaries({
    "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
    "rfm_r": st.integers(0, 5), "rfm_f": st.integers(0, 5), "rfm_m": st.integers(0, 5),
    "rfm_group": st.sampled_from(GROUP_NAMES), "tier": st.sampled_from(["", "silver", "gold"]),
    "spend_365": st.integers(0, 100_000), "orders_365": st.integers(0, 20),
    "last_paid_ms": st.one_of(st.just(0), st.integers(MS - 400 * rules.DAY_MS, MS)),
    "registered_ms": st.integers(MS - 800 * rules.DAY_MS, MS),
    "channel": st.sampled_from(["", "WXMP", "H5"]), "birthday_month": st.integers(0, 12),
    "consent": st.integers(0, 1),
    "followed_personas": st.lists(st.sampled_from(PERSONAS), unique=True, max_size=2)})


def _condition():
    return st.one_of(
        st.builds(Condition, st.just("tag"), st.sampled_from(["any", "all", "none"]),
                  st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True).map(tuple)),
        st.builds(Condition, st.sampled_from(["rfm_r", "rfm_f", "rfm_m", "birthday_month"]), st.just("in"),
                  st.lists(st.integers(0, 12), min_size=1, max_size=3).map(tuple)),
        st.builds(Condition, st.sampled_from(["spend_365", "orders_365", "rfm_m", "marketing_consent"]),
                  st.sampled_from(["gte", "lte"]), st.tuples(st.integers(0, 100_000))),
        st.builds(Condition, st.sampled_from(["rfm_group", "tier", "channel"]), st.just("in"),
                  st.lists(st.sampled_from(GROUP_NAMES[:3] + ["gold", "WXMP", "H5"]), min_size=1, max_size=2).map(tuple)),
        st.builds(Condition, st.sampled_from(["last_order", "registered"]), st.sampled_from(["within", "before"]),
                  st.tuples(st.integers(0, 500))),
        st.builds(Condition, st.just("followed_persona"), st.just("in"),
                  st.lists(st.sampled_from(PERSONAS), min_size=1, max_size=2, unique=True).map(tuple)))


rule_strategy = st.recursive(
    st.builds(Rule, st.booleans(), st.lists(_condition(), max_size=3).map(tuple)),
    lambda inner: st.builds(Rule, st.booleans(), st.lists(_condition(), max_size=2).map(tuple),
                            st.lists(inner, max_size=2).map(tuple)),
    max_leaves=4)


def test_a_segment_query_selects_what_the_rule_matches(db):
    coll = db["segment_facts_property"]
    coll.create_index([("merchant_id", ASCENDING), ("tags", ASCENDING)])
    coll.create_index([("merchant_id", ASCENDING), ("member_id", ASCENDING)])
    coll.create_index([("merchant_id", ASCENDING), ("followed_personas", ASCENDING)])

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(facts_strategy, min_size=1, max_size=12), rule_strategy)
    def check(members, rule):
        m = new_merchant_id()
        other = new_merchant_id()
        docs = [{**FACTS_DEFAULTS, **f, "_id": f"{m}:mem_{i:03d}", "merchant_id": m, "member_id": f"mem_{i:03d}"}
                for i, f in enumerate(members)]
        assume(not rules.rule_violations(rule))  # at most 3 deep, as the API allows
        coll.insert_many(docs + [{**docs[0], "_id": f"{other}:mem_000", "merchant_id": other}])
        expected = [d["member_id"] for d in docs if rules.matches(rule, d, NOW)]
        query = rules.to_query(rule, m, NOW)
        assert count_matching(coll, query) == len(expected)
        first = page_matching(coll, query, "", 2)
        rest = page_matching(coll, query, first[-1], 100) if first else []
        assert first + rest == expected
        assert sorted(ids_matching(coll, query)) == expected

    check()


def test_a_grants_targets_are_added_once_and_paged_as_one_id_range(coll):
    m = new_merchant_id()
    assert add_targets(coll, m, "cgj_1", ["mem_3", "mem_1", "mem_2", "mem_1"]) == 3
    assert add_targets(coll, m, "cgj_1", ["mem_2", "mem_4"]) == 1                 # taken again after a restart
    assert add_targets(coll, m, "cgj_10", ["mem_0"]) == 1                         # another grant, a prefix apart
    assert add_targets(coll, m, "cgj_0", ["mem_9"]) == 1
    assert targets_page(coll, m, "cgj_1", "", 3) == ["mem_1", "mem_2", "mem_3"]
    assert targets_page(coll, m, "cgj_1", "mem_3", 3) == ["mem_4"]
    assert targets_page(coll, m, "cgj_1", "mem_4", 3) == []
    assert targets_page(coll, new_merchant_id(), "cgj_1", "", 3) == []


def test_the_ids_matching_a_rule_and_who_consents_among_members(coll):
    m = new_merchant_id()
    coll.insert_many([{**FACTS_DEFAULTS, "_id": f"{m}:mem_{i}", "merchant_id": m, "member_id": f"mem_{i}",
                       "birthday_month": 1 + i % 2, "consent": int(i < 2)} for i in range(4)]
                     + [{**FACTS_DEFAULTS, "_id": "other:mem_0", "merchant_id": "other", "member_id": "mem_0",
                         "birthday_month": 1, "consent": 1}])
    query = rules.to_query(Rule(conditions=(Condition("birthday_month", "in", (1,)),)), m, NOW)
    assert sorted(ids_matching(coll, query)) == ["mem_0", "mem_2"]
    assert consenting(coll, m, ["mem_0", "mem_1", "mem_2", "mem_9"]) == {"mem_0", "mem_1"}


def test_a_rules_filter_is_flattened_for_the_count_command_and_keeps_an_or_apart(coll):
    m = new_merchant_id()
    coll.insert_many([{**FACTS_DEFAULTS, "_id": f"{m}:mem_{i}", "merchant_id": m, "member_id": f"mem_{i}",
                       "birthday_month": 1 + i % 3, "consent": i % 2, "last_paid_ms": i * rules.DAY_MS}
                      for i in range(12)] + [{**FACTS_DEFAULTS, "_id": "x:mem_0", "merchant_id": "x",
                                              "member_id": "mem_0", "birthday_month": 1, "consent": 1}])
    plain = rules.to_query(Rule(conditions=(Condition("birthday_month", "in", (1, 2)),
                                            Condition("marketing_consent", "in", (1,)),
                                            Condition("last_order", "before", (0,)))), m, NOW)
    assert flat_filter(plain) == {"merchant_id": m, "birthday_month": {"$in": [1, 2]}, "consent": {"$in": [1]},
                                  "last_paid_ms": {"$gt": 0, "$lt": MS}}
    either = rules.to_query(Rule(any_of=True, conditions=(Condition("birthday_month", "in", (1,)),
                                                          Condition("marketing_consent", "in", (1,)))), m, NOW)
    assert flat_filter(either) == {"$and": [{"merchant_id": m}, either["$and"][1]]}
    for query in (plain, either):
        assert count_matching(coll, query) == coll.count_documents(query)
