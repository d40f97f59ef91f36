"""Who may manage a persona: OWNER and OPERATOR manage every persona of their merchant; a
GUIDE manages only the personas assigned to them, their content and live sessions, and
reads only the funnels of those. Everyone else manages none."""
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


# Funnels a guide may read: of a persona, content item or live session of theirs. A
# channel's or a share code's funnel spans personas, so only managers read it.
GUIDE_FUNNEL_DIMENSIONS = ("persona", "content", "live_session", "guide")


def require_funnel_dimension(dimension: str, roles: tuple[str, ...]) -> None:
    if not sees_all(roles) and dimension not in GUIDE_FUNNEL_DIMENSIONS:
        raise PermissionDenied("a guide reads the funnels of their personas, content and live sessions only",
                               reason="PERSONA_NOT_ASSIGNED")


def require_own_performance(guide_id: str, staff_id: str, roles: tuple[str, ...]) -> None:
    """A guide's performance: OWNER and OPERATOR read any guide's, a GUIDE only their own."""
    if not sees_all(roles) and (not staff_id or guide_id != staff_id):
        raise PermissionDenied("a guide reads only their own performance", reason="GUIDE_NOT_SELF")
