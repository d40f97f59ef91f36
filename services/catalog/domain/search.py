"""Search terms for titles in Chinese and English.

Chinese has no spaces, so a title is indexed by its single CJK characters and the
bigrams of each CJK run; Latin words are indexed with their prefixes. A keyword matches
when the title holds all of the keyword's terms.
"""
from __future__ import annotations

import re

# CJK unified ideographs (incl. extension A) and compatibility ideographs.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(f"[{_CJK}]+|[a-z0-9]+")
_CJK_RUN = re.compile(f"^[{_CJK}]+$")
# Longer words add prefixes only up to this length: enough to type-ahead, bounded size.
MAX_PREFIX = 20


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall((text or "").lower())


def title_terms(title: str) -> list[str]:
    """Every term a title can be found by, without duplicates, in a stable order."""
    terms: dict[str, None] = {}
    for token in _tokens(title):
        if _CJK_RUN.match(token):
            for i, char in enumerate(token):
                terms[char] = None
                if i + 1 < len(token):
                    terms[token[i:i + 2]] = None
        else:
            for end in range(1, min(len(token), MAX_PREFIX) + 1):
                terms[token[:end]] = None
            terms[token] = None
    return list(terms)


def keyword_terms(keyword: str) -> list[str]:
    """The terms a title must all hold to match `keyword`."""
    terms: dict[str, None] = {}
    for token in _tokens(keyword):
        if _CJK_RUN.match(token):
            if len(token) == 1:
                terms[token] = None
            for i in range(len(token) - 1):
                terms[token[i:i + 2]] = None
        else:
            # A title holds every prefix of its words, so a word also matches as a prefix.
            terms[token] = None
    return list(terms)
