"""Databases for the store tests: a SQLite file per test, and a fresh schema per
test on the PostgreSQL server at 127.0.0.1:5432 (so parallel runs never collide).
PostgreSQL tests skip only when the server is unreachable and ``CI`` is unset
(in CI a skip fails the run, see tests/conftest.py)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cookiegate.records import Store

PG_URL = os.environ.get("COOKIEGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_reachable() -> bool:
    import psycopg

    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@dataclass(frozen=True)
class DB:
    kind: str
    url: str
    schema: str | None
    tmp: Path

    def store(self, **kwargs: object) -> Store:
        store = Store(self.url, schema=self.schema, **kwargs)  # type: ignore[arg-type]
        store.migrate()
        return store


def _make(kind: str, tmp_path: Path) -> Iterator[DB]:
    if kind == "sqlite":
        yield DB("sqlite", f"sqlite:///{tmp_path / 'records.db'}", None, tmp_path)
        return
    if not pg_reachable():
        pytest.skip(reason="PostgreSQL is not reachable at 127.0.0.1:5432")
    schema = f"cg_test_{os.getpid()}_{secrets.token_hex(4)}"
    yield DB("postgres", PG_URL, schema, tmp_path)
    cleanup = Store(PG_URL, schema=schema)
    cleanup.drop()
    cleanup.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DB]:
    yield from _make(str(request.param), tmp_path)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[DB]:
    yield from _make("sqlite", tmp_path)


@pytest.fixture
def pg_db(tmp_path: Path) -> Iterator[DB]:
    yield from _make("postgres", tmp_path)


@pytest.fixture
def store(db: DB) -> Iterator[Store]:
    s = db.store()
    yield s
    s.close()
