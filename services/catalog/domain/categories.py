"""The category tree: each category knows its ancestors, so a product filed under a
category is found under every ancestor too, and the tree stays shallow."""
from __future__ import annotations

MAX_DEPTH = 5


def ancestors_of_child(parent_id: str, parent_ancestors: list[str]) -> list[str]:
    """The ancestors of a new category under `parent_id` (root first); [] for a root."""
    return [*parent_ancestors, parent_id] if parent_id else []


def can_have_children(ancestors: list[str]) -> bool:
    """A category at depth MAX_DEPTH (its ancestors plus itself) takes no sub-categories."""
    return len(ancestors) + 1 < MAX_DEPTH


def path(category_id: str, ancestors: list[str]) -> list[str]:
    """What a product under `category_id` stores: the category and its ancestors, root first."""
    return [*ancestors, category_id] if category_id else []
