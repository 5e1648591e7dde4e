"""The ``cookiegate`` command line."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import ConfigError
from .policy import Policy


def _load(path: Path | None) -> Policy:
    try:
        return Policy.from_toml(path) if path is not None else Policy()
    except ConfigError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None


def _gate(policy: Policy, prefix: str) -> Any:
    """The gate this policy makes (with a throwaway key): it checks what only a
    gate checks (texts, beacons against the prefix) and knows its own cookies."""
    from .gate import Gate

    try:
        return Gate(policy, secret_keys=["cookiegate-cli-check-only-0000"], prefix=prefix)
    except ConfigError as exc:
        raise click.ClickException(f"invalid policy: {exc}") from None


def _console() -> Console:
    """Rich's console; piped, wide enough that table cells are not cut at 80."""
    return Console(width=None if sys.stdout.isatty() else 200)


prefix_option = click.option(
    "--prefix",
    default="/_cookiegate/",
    show_default=True,
    help="The Gate's prefix (beacon routes may not overlap it).",
)


policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="cookiegate.toml to load (default: built-in defaults and catalogue).",
)


class _Group(click.Group):
    """Exit codes that keep their meaning: 1 is a failed check (or a refused
    confirmation), 2 a usage error, 130 an interruption (Ctrl-C), 141 a closed
    output pipe (``| head``) - click gives 1 for the last two."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        kwargs["standalone_mode"] = False
        try:
            try:
                code = super().main(*args, **kwargs)
            finally:
                sys.stdout.flush()
            if isinstance(code, int) and code:  # a ctx.exit(n): the code, as standalone
                sys.exit(code)
            return code
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                sys.exit(130)
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except BrokenPipeError:
            # nobody reads the rest: no traceback, and none when Python flushes
            with contextlib.suppress(OSError, ValueError):  # no real file (tests)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except KeyboardInterrupt:
            sys.exit(130)


@click.group(cls=_Group)
@click.version_option(package_name="cookiegate")
def main() -> None:
    """cookiegate: cookie consent and tracking gate."""


@main.command()
@policy_option
@prefix_option
def check(policy_path: Path | None, prefix: str) -> None:
    """Validate a policy file (as Gate(...) would) and summarise it."""
    policy = _load(policy_path)
    _gate(policy, prefix)
    console = _console()
    table = Table(title=f"policy version {policy.version}")
    table.add_column("category")
    table.add_column("always on")
    table.add_column("site rules", justify="right")
    table.add_column("catalogue rules", justify="right")
    for name, cat in policy.categories.items():
        site = sum(1 for r in policy.rules if r.category == name and r.origin == "site")
        cat_n = sum(1 for r in policy.rules if r.category == name and r.origin == "catalog")
        # the site's texts are not Rich markup ("[/beta]" in a label)
        table.add_row(
            Text(cat.label or name), "yes" if cat.necessary else "no", str(site), str(cat_n)
        )
    console.print(table)


@main.command()
@policy_option
@prefix_option
@click.argument("names", nargs=-1, required=True)
def classify(policy_path: Path | None, prefix: str, names: tuple[str, ...]) -> None:
    """Show how cookie NAMES are classified. Exits 1 if any is undeclared."""
    policy = _load(policy_path)
    gate = _gate(policy, prefix)
    own = {part: rule for rule in gate.own_cookie_rules() for part in rule.name.split(" / ")}
    console = _console()
    table = Table()
    for col in ("cookie", "category", "vendor", "lifetime", "rule"):
        table.add_column(col, no_wrap=col in ("cookie", "category"))
    unknown = False
    for name in names:
        rule = own.get(name) or policy.rule_for(name)
        if rule is None:
            unknown = True
            undeclared = Text("undeclared (blocked until consent)", style="red")
            table.add_row(Text(name), undeclared, "", "", "")
        else:
            origin = "cookiegate" if name in own else f"{rule.origin}:{rule.match}"
            table.add_row(
                *(Text(v) for v in (name, rule.category, rule.vendor, rule.lifetime, origin))
            )
    console.print(table)
    if unknown:
        sys.exit(1)


@main.command()
@policy_option
@prefix_option
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="md", show_default=True)
@click.option("--locale", default="en", show_default=True, help="en, ko, de, fr or es")
@click.option("--catalog/--no-catalog", default=False, help="Also list catalogue cookies.")
def declare(policy_path: Path | None, prefix: str, fmt: str, locale: str, catalog: bool) -> None:
    """Print the cookie declaration, for a privacy policy (cookiegate's own
    cookies included, as on the site's declaration page)."""
    from .ui import LOCALES

    if locale not in LOCALES:
        raise click.BadParameter(f"must be one of {', '.join(LOCALES)}", param_hint="--locale")
    ui = _gate(_load(policy_path), prefix).ui
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


#: the longest retention ``--days``/``--min-retention-days`` take (100 years)
MAX_DAYS = 36_500


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    from .records.store import normalise_url

    try:
        return make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:
        return "the records database"


def _db_error(exc: BaseException, url: str) -> click.ClickException:
    """One line for an error of the database (no traceback)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return click.ClickException(f"records database {_where(url)}: {first}")


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        raise _db_error(exc, url) from None


def _store(db_url: str, schema: str | None, *, create: bool = False) -> Any:
    """The store of ``--db``. Only ``create`` (``records migrate``) makes a
    database or its tables; otherwise a missing SQLite file or a database
    without cookiegate tables is an error (a typo must not look like an empty,
    valid chain). An existing store of an older schema is migrated."""
    from sqlalchemy.engine import make_url

    from .records import Store
    from .records.store import STORE_VERSION, normalise_url

    with _database_errors(db_url):
        store = Store(db_url, schema=schema)
        click.get_current_context().call_on_close(store.close)
        if store.dialect == "sqlite":
            path = make_url(normalise_url(db_url)).database or ""
            if path in ("", ":memory:") or path.startswith("file:"):
                raise click.ClickException("--db: give the path of a SQLite file")
            file = Path(path)
            if create and not file.parent.is_dir():
                raise click.ClickException(f"--db: directory {file.parent} does not exist")
            if not create and not file.is_file():
                raise click.ClickException(
                    f"--db: no records database at {file} (`cookiegate records migrate` "
                    "creates one)"
                )
        if not create:
            version = store.schema_version()
            if version is None:
                raise click.ClickException(
                    f"--db: {_where(db_url)} holds no cookiegate records tables"
                    + (f" in schema {schema}" if schema else "")
                    + " (`cookiegate records migrate` creates them)"
                )
            if version == STORE_VERSION:
                return store
        store.migrate()
    return store


def _telemetry(spec: str) -> Any:
    """The :class:`~cookiegate.records.TelemetryStore` named ``MODULE:ATTR``: the
    object the app passes to ``Recorder(telemetry=...)``, or a callable without
    arguments returning it. Imported with the working directory on the path."""
    import importlib
    import os

    from .records import TelemetryStore

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("must be MODULE:ATTR", param_hint="--telemetry")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = getattr(importlib.import_module(module_name), attr)
        if not isinstance(obj, TelemetryStore) and callable(obj):
            obj = obj()
    except Exception as exc:
        raise click.ClickException(f"--telemetry {spec}: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, TelemetryStore):
        raise click.ClickException(
            f"--telemetry {spec}: not a TelemetryStore (count_for(), erase(), purge())"
        )
    return obj


@main.group()
def records() -> None:
    """Consent records: verify the chain, serve members' requests."""


@records.command()
@db_option
@schema_option
def migrate(db_url: str, schema: str | None) -> None:
    """Create the tables or bring them to the current schema version."""
    store = _store(db_url, schema, create=True)
    with _database_errors(db_url):
        click.echo(f"schema version {store.migrate()}")


@records.command()
@db_option
@schema_option
@click.option(
    "--min-retention-days",
    type=click.IntRange(min=1, max=MAX_DAYS),
    default=None,
    help="Fail if a purge deleted records younger than this (the retention you keep).",
)
def verify(db_url: str, schema: str | None, min_retention_days: int | None) -> None:
    """Check the whole hash chain. Exits 1 naming the first bad record.

    Prints the record range, the chain head and the purge anchor on one line:
    keep it somewhere else, a moved anchor or a rewritten head shows against it.
    """
    from rich.progress import Progress

    store = _store(db_url, schema)
    with _database_errors(db_url):
        total = store.count()
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("verifying", total=total)
            result = store.verify(
                lambda n: progress.advance(task, n), min_retention_days=min_retention_days
            )
    if result.ok:
        click.echo(f"OK: {result.summary()}")
        return
    if result.record_id is not None:
        where, done = f"at record {result.record_id} (seq {result.seq})", "before it verified"
    else:
        where, done = f"(anchor seq {result.seq})", "verified"
    click.echo(f"FAILED {where}: {result.reason}; {result.count} records {done}", err=True)
    click.echo(f"checked: {result.summary()}", err=True)
    sys.exit(1)


@records.command()
@db_option
@schema_option
@click.option("--user", "user_id", default=None, help="Site account id (link_account).")
@click.option("--consent", "consent_id", default=None, help="Consent id (from my-data).")
def export(db_url: str, schema: str | None, user_id: str | None, consent_id: str | None) -> None:
    """Print, as JSON, everything held about a member (every linked consent,
    --user) or every record of one consent (--consent)."""
    import json

    if (user_id is None) == (consent_id is None):
        raise click.UsageError("give exactly one of --user and --consent")
    store = _store(db_url, schema)
    with _database_errors(db_url):
        doc = (
            store.export_user(user_id)
            if user_id is not None
            else store.export_consent(consent_id or "")
        )
    click.echo(json.dumps(doc, indent=2))


@records.command()
@db_option
@schema_option
@click.option("--user", "user_id", required=True, help="Site account id (link_account).")
@click.option(
    "--telemetry",
    "telemetry_spec",
    envvar="COOKIEGATE_TELEMETRY",
    default=None,
    metavar="MODULE:ATTR",
    help="The app's TelemetryStore (what it passes to Recorder(telemetry=...)), or a "
    "callable returning it; its telemetry of the member is erased too "
    "(env COOKIEGATE_TELEMETRY).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def erase(
    db_url: str, schema: str | None, user_id: str, telemetry_spec: str | None, yes: bool
) -> None:
    """Erase a member's personal data (the chain keeps verifying): the personal
    part of their records, their account links and, with --telemetry, their
    telemetry."""
    import json

    telemetry = _telemetry(telemetry_spec) if telemetry_spec else None
    store = _store(db_url, schema)
    if not yes:
        click.confirm(f"Erase the personal data of {user_id!r}?", abort=True)
    with _database_errors(db_url):
        ids = store.consents_of(user_id)
        erased = sum(telemetry.erase(c) for c in ids) if telemetry is not None else None
        counts: dict[str, int | None] = {**store.erase_user(user_id), "telemetry": erased}
    click.echo(json.dumps(counts))
    if telemetry is None:
        click.echo(
            "telemetry not erased: give --telemetry MODULE:ATTR (the app's TelemetryStore)",
            err=True,
        )


@main.command()
@db_option
@schema_option
@click.option("--days", type=click.IntRange(min=1, max=MAX_DAYS), default=3 * 365,
              show_default=True, help="Retention of consent records, in days.")  # fmt: skip
def purge(db_url: str, schema: str | None, days: int) -> None:
    """Delete consent records past their retention period (from the chain start)."""
    import time

    from rich.progress import Progress

    store = _store(db_url, schema)
    before = int((time.time() - days * 86400) * 1000)
    with _database_errors(db_url):
        total = store.count_before(before)
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("purging", total=total)
            n = store.purge(before, lambda k: progress.advance(task, k))
    click.echo(f"purged {n} record(s) older than {days} days")
