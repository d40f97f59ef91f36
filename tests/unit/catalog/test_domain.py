"""Catalog domain rules: search terms, SKU merging, reservation states, the stock ledger."""
from __future__ import annotations

import itertools

import pytest

from hypothesis import given, strategies as st

from services.catalog.domain import categories, listing, products, search, stock


def test_chinese_title_found_by_substring_and_single_character():
    terms = set(search.title_terms("夏季碎花连衣裙"))
    assert set(search.keyword_terms("连衣裙")) <= terms
    assert set(search.keyword_terms("裙")) <= terms
    assert not set(search.keyword_terms("裙子")) <= terms


def test_latin_words_are_lower_cased_and_match_by_prefix():
    terms = set(search.title_terms("Summer DRESS 2024"))
    assert {"dress", "dre", "summer", "2024"} <= terms
    assert search.keyword_terms("Dress") == ["dress"]
    assert not set(search.keyword_terms("dresses")) <= terms


def test_mixed_keyword_needs_every_part():
    terms = set(search.title_terms("羊毛大衣 Wool Coat"))
    assert set(search.keyword_terms("wool 大衣")) <= terms
    assert not set(search.keyword_terms("silk 大衣")) <= terms
    assert search.keyword_terms("!!! ") == []


def test_merge_keeps_ids_of_known_codes_and_seeds_only_new_skus():
    ids = (f"sku_{i}" for i in itertools.count())
    first = products.merge_skus([], [products.SkuSpec("A", list_price=100, initial_stock=5)], lambda: next(ids))
    assert [(s.code, q) for s, q in first.created] == [("A", 5)]
    again = products.merge_skus(first.skus, [products.SkuSpec("A", list_price=80, initial_stock=99),
                                             products.SkuSpec("B", list_price=120, initial_stock=7)], lambda: next(ids))
    assert [s.sku_id for s in again.skus][0] == first.skus[0].sku_id
    assert [(s.code, q) for s, q in again.created] == [("B", 7)]
    assert products.min_price(again.skus) == 80


def test_shoppers_see_only_products_on_shelf():
    assert products.visible_to(products.ON_SHELF, is_staff=False)
    assert not products.visible_to(products.DRAFT, is_staff=False)
    assert products.visible_to(products.OFF_SHELF, is_staff=True)


def test_reservation_state_machine():
    assert stock.can_transition(stock.RESERVED, stock.COMMITTED)
    assert stock.can_transition(stock.RESERVED, stock.RELEASED)
    for a, b in [(stock.COMMITTED, stock.RELEASED), (stock.RELEASED, stock.COMMITTED),
                 (stock.RELEASED, stock.RESERVED), (stock.COMMITTED, stock.COMMITTED)]:
        assert not stock.can_transition(a, b)


def test_movement_ids_are_deterministic_per_kind_reservation_and_sku():
    assert stock.movement_id(stock.RESERVE, "sku_1", "r1") == stock.movement_id(stock.RESERVE, "sku_1", "r1")
    assert stock.movement_id(stock.RESERVE, "sku_1", "r1") != stock.movement_id(stock.RELEASE, "sku_1", "r1")
    assert stock.movement_id(stock.INITIAL, "sku_1") != stock.movement_id(stock.INITIAL, "sku_2")


@st.composite
def histories(draw):
    """A random but legal history of one SKU: seed, then reserve, commit and release."""
    initial = draw(st.integers(0, 1000))
    moves = [(stock.INITIAL, initial)]
    levels = stock.Levels().apply(stock.deltas(stock.INITIAL, initial))
    held: list[int] = []
    for action, q in draw(st.lists(st.tuples(st.sampled_from(["reserve", "commit", "release"]),
                                             st.integers(1, 50)), max_size=40)):
        if action == "reserve" and q <= levels.available:
            moves.append((stock.RESERVE, q))
            held.append(q)
        elif action in ("commit", "release") and held:
            kind = stock.COMMIT if action == "commit" else stock.RELEASE
            moves.append((kind, held.pop(0)))
        else:
            continue
        levels = levels.apply(stock.deltas(*moves[-1]))
    return initial, moves, levels, held


@given(histories())
def test_ledger_recompute_equals_stock_and_always_balances(history):
    initial, moves, levels, held = history
    recomputed = stock.recompute(stock.deltas(k, q) for k, q in moves)
    assert recomputed == levels
    assert recomputed.consistent()
    assert recomputed.reserved == sum(held)
    sold = sum(q for k, q in moves if k == stock.COMMIT)
    assert recomputed.on_hand == initial - sold


def test_every_movement_kind_keeps_available_equal_to_on_hand_minus_reserved():
    for kind in stock.KINDS:
        d = stock.deltas(kind, 3)
        assert d.available == d.on_hand - d.reserved, kind
    assert stock.deltas(stock.ADJUST, -4) == stock.Deltas(on_hand=-4, available=-4)
    assert stock.deltas(stock.RETURN, 2) == stock.Deltas(on_hand=2, available=2)
    assert stock.deltas(stock.POOL_OUT, 5) == stock.Deltas(reserved=5, available=-5)
    assert stock.deltas(stock.POOL_IN, 5) == stock.Deltas(reserved=-5, available=5)
    for kind in set(stock.KINDS) - {stock.ADJUST}:
        with pytest.raises(ValueError):
            stock.deltas(kind, -1)
    assert (stock.sales_delta(stock.COMMIT, 3), stock.sales_delta(stock.RETURN, 3),
            stock.sales_delta(stock.ADJUST, 3)) == (3, -3, 0)


def test_product_status_goes_draft_to_on_shelf_and_back_and_forth_never_back_to_draft():
    ok = [(None, "DRAFT"), (None, "ON_SHELF"), ("DRAFT", "ON_SHELF"), ("ON_SHELF", "OFF_SHELF"),
          ("OFF_SHELF", "ON_SHELF"), ("ON_SHELF", "ON_SHELF"), ("DRAFT", "DRAFT")]
    bad = [(None, "OFF_SHELF"), ("DRAFT", "OFF_SHELF"), ("ON_SHELF", "DRAFT"), ("OFF_SHELF", "DRAFT")]
    assert all(products.can_change_status(a, b) for a, b in ok)
    assert not any(products.can_change_status(a, b) for a, b in bad)


def test_category_paths_and_depth():
    assert categories.ancestors_of_child("", []) == []
    assert categories.ancestors_of_child("c2", ["c1"]) == ["c1", "c2"]
    assert categories.path("c3", ["c1", "c2"]) == ["c1", "c2", "c3"] and categories.path("", []) == []
    assert categories.can_have_children(["c1", "c2", "c3"])  # the child is at depth 5
    assert not categories.can_have_children(["c1", "c2", "c3", "c4"])


def test_listing_keys_and_fingerprints():
    doc = {"_id": "prd_1", "min_price": 900, "sales": 4}
    assert listing.key_of(listing.SORTS[listing.NEWEST], doc) == listing.Key("prd_1", "prd_1")
    assert listing.key_of(listing.SORTS[listing.PRICE_DESC], doc) == listing.Key(900, "prd_1")
    assert listing.key_of(listing.SORTS[listing.SALES_DESC], {"_id": "prd_2"}) == listing.Key(0, "prd_2")
    assert listing.fingerprint(a=1, b=[1, 2]) == listing.fingerprint(b=[1, 2], a=1)
    assert listing.fingerprint(a=1) != listing.fingerprint(a=2)


@given(st.lists(st.tuples(st.sampled_from(["restock", "write_off", "return", "pool_out", "pool_in"]),
                          st.integers(1, 50)), max_size=40), st.integers(0, 500))
def test_adjustments_returns_and_pools_keep_the_ledger_balanced(actions, initial):
    levels = stock.Levels().apply(stock.deltas(stock.INITIAL, initial))
    moves = [stock.deltas(stock.INITIAL, initial)]
    pooled = 0
    for action, q in actions:
        if action == "restock":
            d = stock.deltas(stock.ADJUST, q)
        elif action == "write_off" and q <= levels.available:
            d = stock.deltas(stock.ADJUST, -q)
        elif action == "return":
            d = stock.deltas(stock.RETURN, q)
        elif action == "pool_out" and q <= levels.available:
            d, pooled = stock.deltas(stock.POOL_OUT, q), pooled + q
        elif action == "pool_in" and q <= pooled:
            d, pooled = stock.deltas(stock.POOL_IN, q), pooled - q
        else:
            continue
        moves.append(d)
        levels = levels.apply(d)
        assert levels.consistent()
    assert stock.recompute(moves) == levels and levels.reserved == pooled
