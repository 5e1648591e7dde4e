"""The ``cookiegate`` command line."""

from __future__ import annotations

import sys
from pathlib import Path

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
