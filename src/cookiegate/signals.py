"""Privacy signals sent by browsers: Global Privacy Control (``Sec-GPC``)."""

from __future__ import annotations

from collections.abc import Iterable


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
