"""``cookiegate records ...`` and ``cookiegate purge`` against SQLite and PostgreSQL."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import update

from cookiegate.cli import main
from cookiegate.records.store import Link, records_t

from .conftest import DB
from .helpers import pending


def _args(db: DB) -> list[str]:
    return ["--db", db.url, *(["--schema", db.schema] if db.schema else [])]


def test_verify_export_erase_purge(db: DB) -> None:
    store = db.store()
    try:
        store.append(
            [pending("consent-aaaaaaaa", ip="192.0.2.0/24", at_ms=1000), pending()],
            [Link("consent-aaaaaaaa", "member-1", 1)],
        )
        runner = CliRunner()
        ok = runner.invoke(main, ["records", "verify", *_args(db)])
        assert ok.exit_code == 0, ok.output
        assert "OK: 2 records" in ok.output

        out = runner.invoke(main, ["records", "export", "--user", "member-1", *_args(db)])
        assert out.exit_code == 0, out.output
        doc = json.loads(out.output)
        assert doc["consents"][0]["records"][0]["personal"] == {"ip_prefix": "192.0.2.0/24"}

        gone = runner.invoke(main, ["records", "erase", "--user", "member-1", "--yes", *_args(db)])
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.output)["records_personal_erased"] == 1
        assert runner.invoke(main, ["records", "verify", *_args(db)]).exit_code == 0

        purged = runner.invoke(main, ["purge", "--days", "30", *_args(db)])
        assert purged.exit_code == 0, purged.output
        assert "purged 1 record(s)" in purged.output
        assert runner.invoke(main, ["records", "verify", *_args(db)]).exit_code == 0

        with store.engine.begin() as conn:
            conn.execute(update(records_t).values(at_ms=records_t.c.at_ms + 1))
        bad = runner.invoke(main, ["records", "verify", *_args(db)])
        assert bad.exit_code == 1
        assert "FAILED at record" in bad.output
    finally:
        store.close()
