"""``cookiegate records ...`` and ``cookiegate purge`` against SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
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
        one = runner.invoke(
            main, ["records", "export", "--consent", "consent-aaaaaaaa", *_args(db)]
        )
        assert one.exit_code == 0, one.output
        assert json.loads(one.output) == doc["consents"][0]
        both = runner.invoke(
            main, ["records", "export", "--user", "member-1", "--consent", "x", *_args(db)]
        )
        assert both.exit_code == 2 and "exactly one of --user and --consent" in both.output

        gone = runner.invoke(main, ["records", "erase", "--user", "member-1", "--yes", *_args(db)])
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.stdout)["records_personal_erased"] == 1
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


def _one_line_error(result: Any) -> str:
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "Traceback" not in result.output
    lines: list[str] = [x for x in str(result.output).splitlines() if x.startswith("Error")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_bad_databases_are_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    notdb = tmp_path / "notdb.db"
    notdb.write_text("not a database, just text\n")
    for cmd in (
        ["records", "verify"],
        ["records", "export", "--user", "u1"],
        ["records", "erase", "--user", "u1", "--yes"],
        ["records", "migrate"],
        ["purge"],
    ):
        err = _one_line_error(runner.invoke(main, [*cmd, "--db", str(notdb)]))
        assert "file is not a database" in err, (cmd, err)
    missing_dir = tmp_path / "nope" / "x.db"
    for cmd in (["records", "verify"], ["records", "migrate"], ["purge"]):
        err = _one_line_error(runner.invoke(main, [*cmd, "--db", f"sqlite:///{missing_dir}"]))
        assert str(missing_dir.parent) in err
    assert not missing_dir.parent.exists()
    err = _one_line_error(
        runner.invoke(main, ["records", "verify", "--db", "postgresql+psycopg://127.0.0.1:1/test"])
    )
    assert "127.0.0.1:1" in err
    ok = tmp_path / "ok.db"
    assert runner.invoke(main, ["records", "migrate", "--db", str(ok)]).exit_code == 0
    huge = runner.invoke(main, ["purge", "--days", "99999999999999", "--db", str(ok)])
    assert huge.exit_code == 2 and "Traceback" not in huge.output
    assert runner.invoke(main, ["purge", "--days", "36500", "--db", str(ok)]).exit_code == 0


def test_verify_of_a_typo_creates_nothing(tmp_path: Path, db: DB) -> None:
    runner = CliRunner()
    typo = tmp_path / "typo.db"
    for cmd in (
        ["records", "verify"],
        ["records", "export", "--user", "u1"],
        ["records", "erase", "--user", "u1", "--yes"],
        ["purge"],
    ):
        err = _one_line_error(runner.invoke(main, [*cmd, "--db", str(typo)]))
        assert "no records database" in err and "migrate" in err
        assert not typo.exists()
    if db.kind == "postgres":  # a schema without the tables: not created either
        from cookiegate.records import Store

        err = _one_line_error(runner.invoke(main, ["records", "verify", *_args(db)]))
        assert "no cookiegate records tables" in err
        probe = Store(db.url, schema=db.schema)
        try:
            assert probe.schema_version() is None
        finally:
            probe.close()


def test_verify_prints_the_anchor_and_checks_the_retention(db: DB) -> None:
    import time

    store = db.store()
    try:
        old = int(time.time() * 1000) - 40 * 86_400_000
        store.append([pending(at_ms=old), pending(at_ms=old + 1), pending()])
        runner = CliRunner()
        before = runner.invoke(main, ["records", "verify", *_args(db)])
        assert before.exit_code == 0
        assert "OK: 3 records, seq 1..3" in before.stdout
        assert "anchor genesis (nothing purged)" in before.stdout
        assert runner.invoke(main, ["purge", "--days", "30", *_args(db)]).exit_code == 0
        after = runner.invoke(main, ["records", "verify", "--min-retention-days", "30", *_args(db)])
        assert after.exit_code == 0, after.output
        assert "OK: 1 records, seq 3..3" in after.stdout
        assert "anchor seq 2 " in after.stdout and "(purge at " in after.stdout
        strict = runner.invoke(
            main, ["records", "verify", "--min-retention-days", "90", *_args(db)]
        )
        assert strict.exit_code == 1
        assert "younger than 90 days" in strict.output
    finally:
        store.close()


def test_erase_with_the_apps_telemetry_store(
    db: DB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import secrets

    module = f"telemetry_{secrets.token_hex(4)}"
    (tmp_path / f"{module}.py").write_text(
        "class Telemetry:\n"
        "    def __init__(self): self.held = {'consent-aaaaaaaa': 5}\n"
        "    def count_for(self, c): return self.held.get(c, 0)\n"
        "    def erase(self, c): return self.held.pop(c, 0)\n"
        "    def purge(self, before): return 0\n"
        "def make(): return Telemetry()\n"
        "store = Telemetry()\n"
    )
    monkeypatch.chdir(tmp_path)
    store = db.store()
    try:
        store.append([pending("consent-aaaaaaaa")], [Link("consent-aaaaaaaa", "member-1", 1)])
        runner = CliRunner()
        erase = ["records", "erase", "--user", "member-1", "--yes", *_args(db)]
        out = runner.invoke(main, [*erase, "--telemetry", f"{module}:store"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout) == {
            "records_personal_erased": 1,
            "account_links": 1,
            "consents": 1,
            "telemetry": 5,
        }
        store.append([], [Link("consent-aaaaaaaa", "member-1", 10**13)])
        # a factory works too; without --telemetry the answer says it was not erased
        again = runner.invoke(main, [*erase, "--telemetry", f"{module}:make"])
        assert json.loads(again.stdout)["telemetry"] == 5
        bare = runner.invoke(main, erase)
        assert json.loads(bare.stdout)["telemetry"] is None
        assert "telemetry not erased" in bare.stderr
        bad = runner.invoke(main, [*erase, "--telemetry", f"{module}:nothing"])
        assert "AttributeError" in _one_line_error(bad)
    finally:
        store.close()
