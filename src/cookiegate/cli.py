"""The ``cookiegate`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .errors import ConfigError
from .policy import Policy


def _load(path: Path | None) -> Policy:
    try:
        return Policy.from_toml(path) if path is not None else Policy()
    except ConfigError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None


policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="cookiegate.toml to load (default: built-in defaults and catalogue).",
)


@click.group()
@click.version_option(package_name="cookiegate")
def main() -> None:
    """cookiegate: cookie consent and tracking gate."""


@main.command()
@policy_option
def check(policy_path: Path | None) -> None:
    """Validate a policy file and summarise it."""
    policy = _load(policy_path)
    console = Console()
    table = Table(title=f"policy version {policy.version}")
    table.add_column("category")
    table.add_column("always on")
    table.add_column("site rules", justify="right")
    table.add_column("catalogue rules", justify="right")
    for name, cat in policy.categories.items():
        site = sum(1 for r in policy.rules if r.category == name and r.origin == "site")
        cat_n = sum(1 for r in policy.rules if r.category == name and r.origin == "catalog")
        table.add_row(cat.label or name, "yes" if cat.necessary else "no", str(site), str(cat_n))
    console.print(table)


@main.command()
@policy_option
@click.argument("names", nargs=-1, required=True)
def classify(policy_path: Path | None, names: tuple[str, ...]) -> None:
    """Show how cookie NAMES are classified. Exits 1 if any is undeclared."""
    policy = _load(policy_path)
    console = Console()
    table = Table()
    for col in ("cookie", "category", "vendor", "lifetime", "rule"):
        table.add_column(col, no_wrap=col in ("cookie", "category"))
    unknown = False
    for name in names:
        rule = policy.rule_for(name)
        if rule is None:
            unknown = True
            table.add_row(name, "[red]undeclared (blocked until consent)[/red]", "", "", "")
        else:
            table.add_row(
                name, rule.category, rule.vendor, rule.lifetime, f"{rule.origin}:{rule.match}"
            )
    console.print(table)
    if unknown:
        sys.exit(1)


@main.command()
@policy_option
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="md", show_default=True)
@click.option("--locale", default="en", show_default=True, help="en, ko, de, fr or es")
@click.option("--catalog/--no-catalog", default=False, help="Also list catalogue cookies.")
def declare(policy_path: Path | None, fmt: str, locale: str, catalog: bool) -> None:
    """Print the cookie declaration, for a privacy policy."""
    from .ui import LOCALES, UI

    if locale not in LOCALES:
        raise click.BadParameter(f"must be one of {', '.join(LOCALES)}", param_hint="--locale")
    ui = UI(_load(policy_path))
    if fmt == "md":
        click.echo(ui.declaration_markdown(locale=locale, include_catalog=catalog), nl=False)
    else:
        click.echo(ui.declaration_page(locale=locale, include_catalog=catalog), nl=False)


# -- proof of consent ---------------------------------------------------------

db_option = click.option(
    "--db",
    "db_url",
    envvar="COOKIEGATE_DB",
    default="sqlite:///cookiegate-records.db",
    show_default=True,
    help="Records database: SQLAlchemy URL or SQLite file path (env COOKIEGATE_DB).",
)
schema_option = click.option("--schema", default=None, help="PostgreSQL schema of the tables.")


def _store(db_url: str, schema: str | None) -> Any:
    from .records import Store

    try:
        store = Store(db_url, schema=schema)
        click.get_current_context().call_on_close(store.close)
        store.migrate()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return store


@main.group()
def records() -> None:
    """Consent records: verify the chain, serve members' requests."""


@records.command()
@db_option
@schema_option
def migrate(db_url: str, schema: str | None) -> None:
    """Create the tables or bring them to the current schema version."""
    store = _store(db_url, schema)
    click.echo(f"schema version {store.migrate()}")


@records.command()
@db_option
@schema_option
def verify(db_url: str, schema: str | None) -> None:
    """Check the whole hash chain. Exits 1 naming the first bad record."""
    from rich.progress import Progress

    store = _store(db_url, schema)
    total = store.count()
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("verifying", total=total)
        result = store.verify(lambda n: progress.advance(task, n))
    if result.ok:
        click.echo(f"OK: {result.count} records, chain head {result.head_hash}")
        return
    click.echo(
        f"FAILED at record {result.record_id} (seq {result.seq}): {result.reason}; "
        f"{result.count} records before it verified",
        err=True,
    )
    sys.exit(1)


@records.command()
@db_option
@schema_option
@click.option("--user", "user_id", required=True, help="Site account id (link_account).")
def export(db_url: str, schema: str | None, user_id: str) -> None:
    """Print, as JSON, everything held about a member (every linked consent)."""
    import json

    click.echo(json.dumps(_store(db_url, schema).export_user(user_id), indent=2))


@records.command()
@db_option
@schema_option
@click.option("--user", "user_id", required=True, help="Site account id (link_account).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(db_url: str, schema: str | None, user_id: str, yes: bool) -> None:
    """Erase a member's personal data (the chain keeps verifying)."""
    import json

    if not yes:
        click.confirm(f"Erase the personal data of {user_id!r}?", abort=True)
    counts = _store(db_url, schema).erase_user(user_id)
    click.echo(json.dumps(counts))


@main.command()
@db_option
@schema_option
@click.option("--days", type=click.IntRange(min=1), default=3 * 365, show_default=True,
              help="Retention of consent records, in days.")  # fmt: skip
def purge(db_url: str, schema: str | None, days: int) -> None:
    """Delete consent records past their retention period (from the chain start)."""
    import time

    from rich.progress import Progress

    store = _store(db_url, schema)
    before = int((time.time() - days * 86400) * 1000)
    total = store.count_before(before)
    with Progress(console=Console(stderr=True)) as progress:
        task = progress.add_task("purging", total=total)
        n = store.purge(before, lambda k: progress.advance(task, k))
    click.echo(f"purged {n} record(s) older than {days} days")
