"""axe-core audits (axe-playwright-python) of cookiegate's UI in Chromium: the
banner on the shop's home page, the open preference centre and the cookie
declaration, in the light theme, the dark theme from the system setting
(prefers-color-scheme) and the dark theme chosen with cookiegate's theme switch.

No violation of impact "serious" or "critical" may remain.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip(
    "axe_playwright_python.sync_playwright",
    reason="install the dev extras: pip install -e '.[dev]'",
)
pytest.importorskip("playwright.sync_api", reason="install the dev extras: pip install -e '.[dev]'")
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Page, expect

from .conftest import NewContext, screenshot_path, wait_for_cookies

pytestmark = pytest.mark.browser

BLOCKING = ("serious", "critical")
CUSTOMISE = "#cookiegate-banner button[data-cg-open]"
DIALOG = "#cookiegate-preferences [role=dialog]"


def audit(page: Page, what: str) -> list[dict[str, Any]]:
    """Run axe-core on the page; return (and print) the serious/critical violations."""
    results = Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    blocking = [v for v in violations if v.get("impact") in BLOCKING]
    for v in violations:
        print(f"[{what}] {v.get('impact')}: {v['id']}: {v['help']}")
        for node in v["nodes"][:5]:
            print(f"    {node['target']}: {node.get('failureSummary', '')!r}")
    return blocking


@pytest.mark.parametrize("theme", ["light", "dark", "dark-switch"])
def test_axe(new_context: NewContext, theme: str) -> None:
    context = new_context(color_scheme="dark" if theme == "dark" else "light")
    page = context.new_page()
    page.goto("/")
    root = page.locator("#cookiegate")

    if theme == "dark-switch":
        # the explicit dark theme, chosen with the switch in the preference centre
        page.click(CUSTOMISE)
        expect(page.locator(DIALOG)).to_be_visible()
        page.locator("#cookiegate-preferences button[name=theme][value=dark]").click()
        expect(root).to_have_class("cg-root cg-theme-dark")
        wait_for_cookies(context, present=("cookiegate_theme",))
        assert {"name": "cookiegate_theme", "value": "dark"}.items() <= next(
            c for c in context.cookies() if c["name"] == "cookiegate_theme"
        ).items()
        page.keyboard.press("Escape")
        page.reload()
        expect(root).to_have_class("cg-root cg-theme-dark")

    failures: dict[str, list[dict[str, Any]]] = {}
    expect(page.locator("#cookiegate-banner")).to_be_visible()
    failures["banner"] = audit(page, f"{theme} banner")

    page.click(CUSTOMISE)
    expect(page.locator(DIALOG)).to_be_visible()
    failures["preferences"] = audit(page, f"{theme} preference centre")

    page.goto("/_cookiegate/cookies")
    expect(page.locator("h1")).to_be_visible()
    if theme == "dark":
        page.screenshot(path=screenshot_path("declaration-dark.png"), full_page=True)
    failures["declaration"] = audit(page, f"{theme} declaration")

    assert not any(failures.values()), {
        where: [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in found]
        for where, found in failures.items()
        if found
    }


def test_axe_finds_problems(new_context: NewContext) -> None:
    """The audit is live: a nameless button on the shop's origin (same CSP) is caught."""
    page = new_context().new_page()
    page.goto("/")
    page.evaluate(
        "document.body.append(Object.assign(document.createElement('button'), {id: 'x'}))"
    )
    found = audit(page, "planted")
    assert any(v["id"] == "button-name" for v in found), found
