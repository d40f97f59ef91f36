"""Ids: a type prefix and a time-sortable ULID body."""
from __future__ import annotations

import time

from siyu_kit.ids import is_id, new_id


def test_new_id_has_the_prefix_and_a_26_char_ulid_body():
    value = new_id("ord")
    prefix, _, body = value.partition("_")
    assert prefix == "ord"
    assert len(body) == 26
    assert is_id(value, "ord")


def test_is_id_rejects_other_prefixes_and_malformed_values():
    value = new_id("prd")
    assert not is_id(value, "sku")
    assert not is_id("", "prd")
    assert not is_id(None, "prd")
    assert not is_id("prd_" + "0" * 25, "prd")
    assert not is_id("prd_" + "U" * 26, "prd")  # U is not in the Crockford alphabet
    assert not is_id(value.lower(), "prd")
    assert not is_id(" " + value, "prd")
    assert not is_id(value + "x", "prd")


def test_ids_sort_by_creation_time_across_milliseconds():
    made = []
    for _ in range(5):
        made.append(new_id("evt"))
        start = time.monotonic()
        while time.monotonic() - start < 0.002:  # step past the ULID's millisecond
            pass
    assert sorted(made) == made


def test_ids_are_unique():
    assert len({new_id("evt") for _ in range(10_000)}) == 10_000
