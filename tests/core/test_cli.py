"""The command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cookiegate.cli import main


def test_check_and_classify(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["check"])
    assert res.exit_code == 0, res.output
    assert "Performance" in res.output
    res = runner.invoke(main, ["classify", "_ga", "sessionid"])
    assert res.exit_code == 0, res.output
    assert "performance" in res.output and "strictly_necessary" in res.output
    res = runner.invoke(main, ["classify", "no_such_cookie"])
    assert res.exit_code == 1
    assert "undeclared" in res.output


def test_bad_policy_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "cookiegate.toml"
    bad.write_text("[[cookies]]\nname = 'x'\ncategory = 'nope'\n", "utf-8")
    res = CliRunner().invoke(main, ["check", "--policy", str(bad)])
    assert res.exit_code == 1
    assert "cookies[0].category" in res.output


def test_declare_markdown_and_html(tmp_path: Path) -> None:
    policy = tmp_path / "cookiegate.toml"
    policy.write_text(
        '[[cookies]]\nname = "ab_variant"\ncategory = "performance"\nvendor = "Shop"\n'
        'purpose = "Design testing"\nlifetime = "30 days"\n',
        "utf-8",
    )
    runner = CliRunner()
    md = runner.invoke(main, ["declare", "--policy", str(policy), "--format", "md"])
    assert md.exit_code == 0, md.output
    assert "ab_variant" in md.output and "Design testing" in md.output
    html = runner.invoke(
        main, ["declare", "--policy", str(policy), "--format", "html", "--locale", "ko"]
    )
    assert html.exit_code == 0, html.output
    assert 'lang="ko"' in html.output and "ab_variant" in html.output
    bad = runner.invoke(main, ["declare", "--locale", "xx"])
    assert bad.exit_code == 2


def test_check_validates_what_the_gate_validates(tmp_path: Path) -> None:
    """texts and beacon routes are checked by Gate(...): check and declare passed
    them (exit 0, or a traceback)."""
    runner = CliRunner()
    for text, says in (
        ('version = "1"\n[texts.xx]\npolicy_text = "hi"\n', "texts.xx"),
        ('[[beacons]]\npath = "/_cookiegate/consent"\ncategory = "performance"\n', "beacons[0]"),
    ):
        policy = tmp_path / "cookiegate.toml"
        policy.write_text(text, "utf-8")
        for command in ("check", "declare"):
            res = runner.invoke(main, [command, "--policy", str(policy)])
            assert res.exit_code == 1, (command, res.output)
            assert says in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["check", "--policy", str(policy), "--prefix", "/cg/"])
    assert res.exit_code == 0, res.output


def test_the_sites_texts_are_not_rich_markup(tmp_path: Path) -> None:
    policy = tmp_path / "cookiegate.toml"
    policy.write_text('[categories.performance]\nlabel = "Performance [/beta]"\n', "utf-8")
    res = CliRunner().invoke(main, ["check", "--policy", str(policy)])
    assert res.exit_code == 0, res.output
    assert "Performance [/beta]" in res.output
    res = CliRunner().invoke(main, ["classify", "[/red]", "[bold]x"])
    assert res.exit_code == 1 and "[/red]" in res.output and "[bold]x" in res.output


def test_cookiegates_own_cookies_are_declared_and_classified() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["declare"])
    assert res.exit_code == 0 and "cookiegate_theme" in res.output
    res = runner.invoke(main, ["classify", "cookiegate", "__Host-cookiegate", "cookiegate_theme"])
    assert res.exit_code == 0, res.output
    assert "undeclared" not in res.output


def test_a_database_driver_that_is_not_supported_is_one_line() -> None:
    res = CliRunner().invoke(
        main, ["records", "migrate", "--db", "postgresql+psycopg2://u:pw@127.0.0.1:1/db"]
    )
    assert res.exit_code == 1
    assert "driver 'psycopg2' is not supported" in res.output and "Traceback" not in res.output


def test_exit_codes_keep_their_meaning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1 is a failed check (or a refused confirmation), 2 a usage error (a
    missing --policy file as much as a directory), 130 Ctrl-C, 141 a closed
    pipe: click gave 1 for the last two and for a missing file."""
    from rich.console import Console

    from cookiegate.policy import Policy

    runner = CliRunner()
    assert runner.invoke(main, ["check", "--policy", str(tmp_path / "no.toml")]).exit_code == 2
    assert runner.invoke(main, ["check", "--policy", str(tmp_path)]).exit_code == 2
    assert runner.invoke(main, ["classify", "no_such_cookie"]).exit_code == 1
    policy = tmp_path / "cookiegate.toml"
    policy.write_text('version = "1"\n', "utf-8")

    def interrupted(path: object) -> Policy:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Policy, "from_toml", staticmethod(interrupted))
        assert runner.invoke(main, ["check", "--policy", str(policy)]).exit_code == 130

    def closed(self: Console, *args: object, **kwargs: object) -> None:
        raise BrokenPipeError

    with monkeypatch.context() as m:
        m.setattr(Console, "print", closed)
        res = runner.invoke(main, ["check"])
        assert res.exit_code == 141 and "Traceback" not in res.output
