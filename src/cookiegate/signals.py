"""Privacy signals sent by browsers: Global Privacy Control (``Sec-GPC``); the
shape of the language tags they send."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

#: the shape of a BCP 47 language tag (RFC 5646): subtags of 1-8 ASCII letters,
#: then of letters or digits, joined by "-"
LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def gpc_enabled(values: Iterable[str]) -> bool:
    """Whether ``Sec-GPC`` values mean "on".

    The GPC spec: a server must ignore the header unless the value is exactly
    ``1``; with several headers, one that is exactly ``1`` is enough. WSGI
    servers join repeated headers with commas, so each comma-separated part is
    checked on its own.
    """
    for value in values:
        if value == "1":
            return True
        if "," in value and any(part.strip() == "1" for part in value.split(",")):
            return True
    return False


_TOOLS = re.compile(
    r"curl/|wget/|python-requests|python-urllib|httpx|aiohttp|go-http-client|"
    r"headlesschrome|lighthouse|chrome-lighthouse|pagespeed|phantomjs|"
    r"(?<!cu)bot\b|crawler|spider|slurp",  # not the phone brand CUBOT
    re.IGNORECASE,
)


@lru_cache(maxsize=1024)
def _is_bot(user_agent: str) -> bool:
    if _TOOLS.search(user_agent):
        return True
    from user_agents import parse  # imported lazily: only when bots are spared

    return bool(parse(user_agent).is_bot)


def is_bot(user_agent: str | None) -> bool:
    """Whether a User-Agent is a crawler or an automated tool (user-agents'
    detection plus rules for curl, python-requests, HeadlessChrome, Lighthouse...).
    A missing User-Agent counts as a tool."""
    if not user_agent:
        return True
    return _is_bot(user_agent[:512])
