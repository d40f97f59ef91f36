"""Page tokens: good for the next page of the listing that issued them, refused otherwise."""
from __future__ import annotations

import re
from dataclasses import dataclass

from siyu_kit import paging
from siyu_kit.errors import Violations

ID = "mem_01JABCDEFGHJKMNPQRSTVWXYZ0"


@dataclass
class Row:
    id: str


def test_a_token_leads_to_where_its_page_stopped():
    fp = paging.fingerprint(kind="members", tier="GOLD")
    rows, token = paging.next_page([Row(ID), Row(ID.replace("0", "1"))], 1, fp)
    assert rows == [Row(ID)] and token
    v = Violations()
    assert paging.decode_cursor(v, token, fp) == ID and not v.items
    assert paging.next_page([Row(ID)], 1, fp) == ([Row(ID)], "")


def test_a_token_of_other_filters_or_not_a_token_is_a_field_violation():
    token = paging.encode_cursor(paging.fingerprint(kind="members", tier="GOLD"), ID)
    for bad, fp in ((token, paging.fingerprint(kind="members", tier="SILVER")),
                    ("not-a-token", ""), (paging.encode_cursor("x", "../etc"), "x")):
        v = Violations()
        assert paging.decode_cursor(v, bad, fp) == ""
        assert [item.field for item in v.items] == ["page_token"]


def test_a_listing_may_stop_at_its_own_kind_of_position():
    key = re.compile(r"^\d{13}:fls_[0-9A-HJKMNP-TV-Z]{26}$")
    at = "1796106088000:fls_01JABCDEFGHJKMNPQRSTVWXYZ0"
    v = Violations()
    assert paging.decode_cursor(v, paging.encode_cursor("f", at), "f", key) == at and not v.items


def test_page_size_defaults_and_bounds():
    v = Violations()
    assert paging.page_size(v, 0) == paging.DEFAULT_PAGE_SIZE and paging.page_size(v, 100) == 100
    assert not v.items
    paging.page_size(v, 101)
    assert [item.field for item in v.items] == ["page_size"]
