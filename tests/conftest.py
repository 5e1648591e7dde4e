"""Shared fixtures. In CI (``CI`` set) a skipped test fails the run: browser and
PostgreSQL tests must really run there."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from cookiegate import CookieRule, Gate, Policy

from .harness import Result, make_asgi, make_wsgi

KEY_OLD = "old-secret-key-0123456789abcdef"
KEY = "new-secret-key-0123456789abcdef"

SITE_RULES = [
    CookieRule("session", "strictly_necessary", vendor="Shop", purpose="Login", lifetime="session"),
    CookieRule("theme", "strictly_necessary", vendor="Shop", purpose="Light/dark theme"),
    CookieRule("ab_variant", "performance", vendor="Shop", purpose="Design testing"),
]


def make_policy(**kwargs: object) -> Policy:
    kwargs.setdefault("version", "2026-11-01")
    kwargs.setdefault("cookies", SITE_RULES)
    return Policy(**kwargs)  # type: ignore[arg-type]


def make_gate(policy: Policy | None = None, **kwargs: object) -> Gate:
    kwargs.setdefault("secret_keys", [KEY])
    return Gate(policy or make_policy(), **kwargs)  # type: ignore[arg-type]


Client = Callable[..., Result]


@pytest.fixture(params=["asgi", "wsgi"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client_for(adapter: str) -> Callable[[Gate], Client]:
    """Build a client for a gate through the adapter under test."""
    return make_asgi if adapter == "asgi" else make_wsgi


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped:
        print(f"\nCI: {skipped} test(s) were skipped; in CI every test must run.")
        session.exitstatus = 1
