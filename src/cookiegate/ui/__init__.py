"""cookiegate's visitor-facing UI: banner, preference centre, cookie declaration.

See :class:`UI`. Templates are in ``templates/``, translations in
``locales/<locale>.toml`` and the CSS/JS in the repository's ``static/``
(shipped in the wheel as ``cookiegate/static/``).
"""

from __future__ import annotations

from .render import LOCALES, UI

__all__ = ["LOCALES", "UI"]
