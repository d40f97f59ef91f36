"""Content lifecycle and the field rules of personas and content."""
from __future__ import annotations

import pytest

from siyu_kit.errors import FailedPrecondition, Violations
from siyu_kit.ids import new_id

from services.content.domain.contents import LIFECYCLE, Content, ContentFields, check_content, lifecycle_after
from services.content.domain.personas import PersonaFields, check_persona

PERSONA = new_id("per")


def fields(**overrides) -> ContentFields:
    base = dict(code="spring-post", persona_id=PERSONA, type="ARTICLE", title="春季护肤", body="",
                product_ids=(new_id("prd"),))
    base.update(overrides)
    return ContentFields(**base)


def content(status: str, published_at_ms: int = 0) -> Content:
    return Content(id=new_id("cnt"), merchant_id="mch_1", version=3, fields=fields(), status=status,
                   published_at_ms=published_at_ms)


def test_new_content_is_a_draft_unless_asked_otherwise():
    assert lifecycle_after(None, "", 1000) == ("DRAFT", 0)
    assert lifecycle_after(None, "SCHEDULED", 1000) == ("SCHEDULED", 0)


def test_creating_published_content_stamps_the_publish_time():
    assert lifecycle_after(None, "PUBLISHED", 1234) == ("PUBLISHED", 1234)


@pytest.mark.parametrize("current,target", [
    ("DRAFT", "SCHEDULED"), ("SCHEDULED", "PUBLISHED"), ("PUBLISHED", "ARCHIVED"),
    ("DRAFT", "PUBLISHED"), ("DRAFT", "ARCHIVED"), ("SCHEDULED", "ARCHIVED"),
])
def test_forward_moves_are_allowed(current, target):
    status, _ = lifecycle_after(content(current), target, 5000)
    assert status == target


@pytest.mark.parametrize("current,target", [
    ("SCHEDULED", "DRAFT"), ("PUBLISHED", "DRAFT"), ("PUBLISHED", "SCHEDULED"),
    ("ARCHIVED", "PUBLISHED"), ("ARCHIVED", "DRAFT"), ("ARCHIVED", "SCHEDULED"),
])
def test_backward_moves_are_refused(current, target):
    with pytest.raises(FailedPrecondition) as raised:
        lifecycle_after(content(current), target, 5000)
    assert raised.value.reason == "STATUS_TRANSITION"
    assert [v.field for v in raised.value.violations] == ["status"]


def test_every_status_may_stay_where_it_is():
    for status in LIFECYCLE:
        assert lifecycle_after(content(status, 77 if status in ("PUBLISHED", "ARCHIVED") else 0), "", 9)[0] == status


def test_publishing_stamps_the_time_once_and_archiving_keeps_it():
    assert lifecycle_after(content("SCHEDULED"), "PUBLISHED", 5000) == ("PUBLISHED", 5000)
    # Editing published content does not move its publish time.
    assert lifecycle_after(content("PUBLISHED", 4000), "PUBLISHED", 9000) == ("PUBLISHED", 4000)
    assert lifecycle_after(content("PUBLISHED", 4000), "ARCHIVED", 9000) == ("ARCHIVED", 4000)


def violations_of(f: ContentFields, status: str = "") -> dict[str, str]:
    v = Violations()
    check_content(f.normalized(), status, v)
    return {item.field: item.description for item in v.items}


def test_valid_content_has_no_violations():
    assert violations_of(fields()) == {}
    assert violations_of(fields(title="x" * 120, product_ids=()), "PUBLISHED") == {}


def test_content_field_rules():
    product = new_id("prd")
    found = violations_of(fields(code="has space", persona_id="per_nope", type="", title="  ",
                                 product_ids=(new_id("sku"), product, product)), "#9")
    assert set(found) == {"code", "persona_id", "type", "title", "product_ids[0]", "product_ids[2]", "status"}


def test_title_longer_than_120_is_refused():
    assert set(violations_of(fields(title="标" * 121))) == {"title"}


def test_at_most_50_products():
    assert set(violations_of(fields(product_ids=tuple(new_id("prd") for _ in range(51))))) == {"product_ids"}


def persona_violations(**overrides) -> set[str]:
    base = dict(code="mama-lin", name="林老师", expertise="育儿顾问", bio="", tone="温柔")
    base.update(overrides)
    v = Violations()
    check_persona(PersonaFields(**base).normalized(), v)
    return {item.field for item in v.items}


def test_persona_rules():
    assert persona_violations() == set()
    assert persona_violations(code="x" * 64, name="n" * 40, bio="b" * 500) == set()
    assert persona_violations(code="", name="   ") == {"code", "name"}
    assert persona_violations(code="x" * 65, name="n" * 41, bio="b" * 501, expertise="e" * 501) == \
        {"code", "name", "bio", "expertise"}
    assert persona_violations(code="a.b", avatar_url="ftp://x") == {"code", "avatar_url"}
