"""A DB span's name from its SQL statement, as the dbapi integration names it, cached."""

from __future__ import annotations

import re

_CACHE_LIMIT = 512  # statements remembered; a full cache is emptied

_LEADING_COMMENT = re.compile(r"/\*.*?\*/")
_FIRST_WORD = re.compile(r"\s*(\S+)")
OPERATIONS: dict[str, str] = {}  # statement -> name (read directly by instrumentation.fast.db)


def operation_name(statement: object) -> str:
    """First word of a SQL statement after one leading ``/* comment */`` ("" if none), as the
    dbapi integration names its spans; cached per statement text."""
    if not isinstance(statement, str) or not statement:
        return ""
    try:
        return OPERATIONS[statement]
    except KeyError:
        pass
    comment = _LEADING_COMMENT.match(statement)
    word = _FIRST_WORD.match(statement, comment.end() if comment else 0)
    name = word.group(1) if word else ""
    if len(statement) <= 4096:  # long statements are usually unique: do not let them fill the cache
        if len(OPERATIONS) >= _CACHE_LIMIT:
            OPERATIONS.clear()
        OPERATIONS[statement] = name
    return name
