"""Category use cases: the tree, flat, and creating and renaming its nodes."""
from __future__ import annotations

from siyu_kit import context
from siyu_kit.errors import AlreadyExists, Conflict, FailedPrecondition, NotFound
from siyu_kit.ids import new_id
from siyu_kit.protos import epoch_ms, now_ms, utcnow

from services.catalog.application import validation
from services.catalog.application.ports import CategoryRepository
from services.catalog.domain import categories as rules


def _name_taken(name: str) -> AlreadyExists:
    return AlreadyExists(f"a sibling category is already called {name!r}", reason="CATEGORY_NAME_TAKEN")


def _tree_order(docs: list[dict]) -> list[dict]:
    """Parents before children; siblings by sort order, then name."""
    return sorted(docs, key=lambda d: (len(d.get("ancestor_ids") or []), int(d.get("sort_order", 0)), d["name"],
                                       d["_id"]))


class CategoryUseCases:
    def __init__(self, categories: CategoryRepository):
        self.categories = categories

    async def list_categories(self) -> list[dict]:
        merchant_id = context.current().require_merchant()
        return _tree_order(await self.categories.all_of(merchant_id))

    async def create_category(self, name: str, parent_id: str, sort_order: int) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        name = validation.create_category(name, parent_id)
        merchant_id = ctx.require_merchant()
        ancestors: list[str] = []
        if parent_id:
            parent = await self.categories.get(merchant_id, parent_id)
            if parent is None:
                raise NotFound("no such parent category", reason="PARENT_NOT_FOUND")
            if not rules.can_have_children(list(parent.get("ancestor_ids") or [])):
                raise FailedPrecondition(f"categories nest at most {rules.MAX_DEPTH} deep",
                                         reason="CATEGORY_TOO_DEEP")
            ancestors = rules.ancestors_of_child(parent_id, list(parent.get("ancestor_ids") or []))
        now = utcnow()
        fields = {"id": new_id("cat"), "merchant_id": merchant_id, "parent_id": parent_id,
                  "ancestor_ids": ancestors, "name": name, "sort_order": sort_order, "created_at": now,
                  "updated_ms": epoch_ms(now), "version": 1}
        if not await self.categories.add(fields):
            raise _name_taken(name)
        return {"_id": fields.pop("id"), **fields}

    async def update_category(self, category_id: str, name: str, sort_order: int, expected_version: int) -> dict:
        ctx = context.current()
        ctx.require_staff("OPERATOR")
        name = validation.update_category(category_id, name, expected_version)
        merchant_id = ctx.require_merchant()
        current = await self.categories.get(merchant_id, category_id)
        if current is None:
            raise NotFound("no such category")
        if expected_version and int(current["version"]) != expected_version:
            raise Conflict("the category is not at the expected version", reason="VERSION_CONFLICT")
        # The embedded server does not enforce the sibling-name index on updates: look first.
        if name != current["name"] and await self.categories.name_taken(merchant_id, current["parent_id"], name,
                                                                         category_id):
            raise _name_taken(name)
        updated = await self.categories.update(merchant_id, category_id, int(current["version"]),
                                               {"name": name, "sort_order": sort_order, "updated_ms": now_ms()})
        if updated is None:
            raise Conflict("the category changed meanwhile; try again", reason="VERSION_CONFLICT")
        return updated
