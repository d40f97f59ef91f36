"""The staff console's persona and content lists over in-memory ports: newest first,
filtered by persona and status, paged by a cursor bound to its filters, staff only."""
from __future__ import annotations

import pytest

from siyu_kit.errors import InvalidArgument, PermissionDenied

from services.content.application.staff_lists import StaffLists
from tests.unit.content.test_content_use_cases import (MERCHANT, content_fields, new_persona, operator,  # noqa: F401
                                                       world)


async def test_personas_and_contents_are_listed_newest_first_by_filter_and_cursor(world):  # noqa: F811
    lists = StaffLists(world.personas, world.contents)
    lin, wang = await new_persona(world, "lin"), await new_persona(world, "wang")
    with operator():
        draft, _ = await world.content_cases.upsert(content_fields(lin.id, "a"), "")
        published, _ = await world.content_cases.upsert(content_fields(lin.id, "b"), "PUBLISHED")
        other, _ = await world.content_cases.upsert(content_fields(wang.id, "c"), "")
    for persona in (lin, wang):  # the guide runs both
        world.personas.items[persona.id].guide_ids = ("stf_1",)
    with operator(roles=("GUIDE",)):
        personas, _ = await lists.personas_page(0, "")
        assert [p.id for p in personas] == [wang.id, lin.id]
        everything, _ = await lists.contents_page("", "", 0, "")
        assert [c.id for c in everything] == [other.id, published.id, draft.id]
        assert [c.id for c in (await lists.contents_page(lin.id, "DRAFT", 0, ""))[0]] == [draft.id]
        first, token = await lists.contents_page(lin.id, "", 1, "")
        rest, last = await lists.contents_page(lin.id, "", 1, token)
        assert [c.id for c in first + rest] == [published.id, draft.id] and last == ""
        with pytest.raises(InvalidArgument) as bad:
            await lists.contents_page("per_x", "LOST", 101, token)
        assert {v.field for v in bad.value.violations} == {"persona_id", "status", "page_size", "page_token"}
    with operator("mch_other"):
        assert (await lists.contents_page("", "", 0, ""))[0] == []
    with operator(roles=("FINANCE",)):
        with pytest.raises(PermissionDenied):
            await lists.personas_page(0, "")
