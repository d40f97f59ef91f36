"""Who may manage a persona: OWNER and OPERATOR manage every persona of their merchant; a
GUIDE manages only the personas assigned to them (their content too, and later their
funnels). Everyone else manages none."""
from __future__ import annotations

from siyu_kit.errors import PermissionDenied

MANAGERS = ("OWNER", "OPERATOR")


def sees_all(roles: tuple[str, ...]) -> bool:
    return bool(set(roles) & set(MANAGERS))


def may_manage(guide_ids: tuple[str, ...], staff_id: str, roles: tuple[str, ...]) -> bool:
    if sees_all(roles):
        return True
    return "GUIDE" in roles and bool(staff_id) and staff_id in guide_ids


def require_manage(guide_ids: tuple[str, ...], staff_id: str, roles: tuple[str, ...], what: str = "persona") -> None:
    if not may_manage(guide_ids, staff_id, roles):
        raise PermissionDenied(f"this {what} is not assigned to you", reason="PERSONA_NOT_ASSIGNED")
