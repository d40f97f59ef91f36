"""What the content repositories report besides the found objects."""
from __future__ import annotations

from siyu_kit.aggregate import StaleVersion


class CodeTaken(StaleVersion):
    """Another writer created a persona or content item with the same code first: read
    it again and decide again, as after any lost compare-and-set."""
