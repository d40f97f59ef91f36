"""Limits several services enforce, declared once.

The lines of an order: what order quotes and places, and what catalog reserves and takes
back for it, hold at most MAX_LINES lines of 1..MAX_LINE_QUANTITY units each. The protos
state the same numbers in the field rules of every order-line list (`max_items: 50`,
quantity `max: 999`); tests/unit/test_line_limits.py keeps them equal.
"""
from __future__ import annotations

MAX_LINES = 50
MAX_LINE_QUANTITY = 999
