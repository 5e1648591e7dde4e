"""Proof of consent: an append-only, hash-chained log of consent events.

Usage::

    from cookiegate.records import Recorder

    recorder = Recorder("sqlite:///var/lib/shop/consent.db")   # or postgresql+psycopg://...
    gate = Gate(policy, secret_keys=[...], records=recorder)

    recorder.link_account(request, user.id)   # after login: the consent follows the member

See ``docs/records.md`` for the record, the chain, the journal and retention.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from sqlalchemy.engine import make_url

from cookiegate.consent import EMPTY_MY_DATA
from cookiegate.errors import ConfigError, CookieGateError

from .model import (
    IP_MODES,
    Encoded,
    PendingRecord,
    canonical,
    hash_ip,
    new_id_and_salt,
    receipt,
    truncate_ip,
)
from .store import (
    CONSENT_ID_MAX,
    DEFAULT_DB,
    USER_ID_MAX,
    Link,
    Store,
    VerifyResult,
    normalise_url,
)
from .writer import Writer

if TYPE_CHECKING:
    from cookiegate.gate import ConsentChange

__all__ = [
    "DEFAULT_DB",
    "InvalidId",
    "Recorder",
    "Retention",
    "Store",
    "TelemetryStore",
    "VerifyResult",
]

DAY = 24 * 3600
#: most records in a ``my-data`` answer (the latest; ``records_total`` counts all)
MY_DATA_RECORDS = 1000


class InvalidId(CookieGateError, ValueError):
    """An id handed to the recorder that cannot be stored (empty, too long for
    its column, not valid Unicode text, or holding a NUL character).

    :param field: ``"user_id"`` or ``"consent_id"``.
    :param message: what is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def _storable(field: str, value: object, limit: int) -> str:
    """``value`` if it can be stored in a ``VARCHAR(limit)`` on every engine."""
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InvalidId(field, f"must be a non-empty string of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidId(field, "must be valid Unicode text (it holds a lone surrogate)") from None
    if "\x00" in value:
        raise InvalidId(field, "must not contain a NUL character")
    return value


@runtime_checkable
class TelemetryStore(Protocol):
    """What a telemetry module offers the recorder: withdrawal erases a visitor's
    telemetry, ``my-data`` counts it, retention purges it."""

    def count_for(self, consent_id: str) -> int: ...

    def erase(self, consent_id: str) -> int: ...

    def purge(self, before: float) -> int: ...


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of data is kept, in days (defaults: consent records 3
    years, the limitation period most sites anchor proof to; telemetry 25 months,
    a year-on-year comparison plus a month)."""

    records_days: int = 3 * 365
    telemetry_days: int = 761

    def __post_init__(self) -> None:
        for name in ("records_days", "telemetry_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"retention.{name}", "must be a positive number of days")


class _Event(NamedTuple):
    """What the request thread queues: plain values, nothing derived (the
    categories map, User-Agent family and IP are worked out in the writer)."""

    at_ms: int
    consent_id: str
    event: str
    source: str
    granted: frozenset[str]
    categories: tuple[str, ...]
    policy_version: str | None
    notice_hash: str | None
    locale: str | None
    expires_at: int | None
    user_agent: str | None
    client: str | None


@dataclass(frozen=True, slots=True)
class _Link:
    consent_id: str
    user_id: str
    at_ms: int


@lru_cache(maxsize=256)
def _categories_json(granted: frozenset[str], categories: tuple[str, ...]) -> str:
    """The canonical ``categories`` object of a record (a few distinct choices)."""
    return canonical({name: name in granted for name in categories})


@lru_cache(maxsize=2048)
def ua_family(user_agent: str | None) -> str | None:
    """The browser family of a User-Agent (``"Firefox"``, ``"Chrome Mobile"``)."""
    if not user_agent:
        return None
    from user_agents import parse

    family = parse(user_agent[:512]).browser.family
    return str(family) if family else None


def default_journal_dir(db: str, schema: str | None = None) -> Path:
    """The journal directory of a database: ``cookiegate-journal/<key>/`` next to
    a SQLite file (else in the working directory), ``<key>`` a digest of the
    database (its URL without the password; a SQLite file by its absolute path)
    and schema. Two processes writing to different databases from the same
    directory never replay each other's journals."""
    url = make_url(normalise_url(db))
    if url.get_backend_name() == "sqlite" and url.database:
        target = Path(url.database).resolve()
        base = target.parent
        name = f"sqlite:{target}"
    else:
        base = Path.cwd()
        name = url._replace(password=None).render_as_string(hide_password=False)
    key = hashlib.sha256(f"{name}\n{schema or ''}".encode()).hexdigest()[:16]
    return base / "cookiegate-journal" / key


class Recorder:
    """Records every consent event, off the request path.

    :param db: SQLAlchemy URL or SQLite file path (default
        ``sqlite:///cookiegate-records.db`` in the working directory).
    :param journal_dir: where the journal files go (default: a directory per
        database and schema under ``cookiegate-journal/``, next to the SQLite
        file, else in the working directory: :func:`default_journal_dir`). A
        process replays the orphan journals it finds there into *its* database,
        so a directory given here must serve one database only.
    :param schema: PostgreSQL schema for the tables.
    :param ip: ``"none"`` (default: no IP kept), ``"truncate"`` (/24, /48) or
        ``"hash"`` (HMAC-SHA-256 with ``ip_key``).
    :param ip_key: key of the IP hash (required with ``ip="hash"``).
    :param retention: :class:`Retention`.
    :param telemetry: a :class:`TelemetryStore`, erased on withdrawal.
    :param controller: Kantara ``piiControllers`` fields (name, contact, email,
        address, phone, url) for receipts.
    :param jurisdiction: Kantara ``jurisdiction``.
    :param policy_url: Kantara ``policyUrl``.
    :param purge_interval: seconds between background purges (0: never).
    :param queue_size, batch_size, flush_interval, fsync, durability: see
        :class:`~cookiegate.records.writer.Writer`.
    """

    def __init__(
        self,
        db: str = DEFAULT_DB,
        *,
        journal_dir: str | os.PathLike[str] | None = None,
        schema: str | None = None,
        ip: str = "none",
        ip_key: str | bytes | None = None,
        retention: Retention | None = None,
        telemetry: TelemetryStore | None = None,
        controller: Mapping[str, str] | None = None,
        jurisdiction: str = "",
        policy_url: str = "",
        purge_interval: float = DAY,
        queue_size: int = 10_000,
        batch_size: int = 2000,
        flush_interval: float = 0.05,
        fsync: str = "batch",
        durability: str = "queue",
        busy_timeout_ms: int = 2000,
    ) -> None:
        self.store = Store(db, schema=schema, busy_timeout_ms=busy_timeout_ms)
        if ip not in IP_MODES:
            raise ConfigError("ip", f"must be one of {', '.join(IP_MODES)}")
        if ip == "hash":
            if not ip_key or not isinstance(ip_key, str | bytes) or len(ip_key) < 16:
                raise ConfigError("ip_key", 'must be a secret of 16+ characters with ip="hash"')
            self._ip_key = ip_key.encode() if isinstance(ip_key, str) else ip_key
        self.ip = ip
        self.retention = retention or Retention()
        if not isinstance(self.retention, Retention):
            raise ConfigError("retention", "must be a cookiegate.records.Retention")
        if telemetry is not None and not isinstance(telemetry, TelemetryStore):
            raise ConfigError("telemetry", "must have count_for(), erase() and purge()")
        self.telemetry = telemetry
        self.controller = dict(controller or {})
        self.jurisdiction = jurisdiction
        self.policy_url = policy_url
        if not isinstance(purge_interval, int | float) or purge_interval < 0:
            raise ConfigError("purge_interval", "must be a number of seconds >= 0")
        self.purge_interval = float(purge_interval)
        self._next_purge = time.monotonic() + min(60.0, self.purge_interval)
        if journal_dir is None:
            journal_dir = default_journal_dir(db, schema)
        self.writer = Writer(
            self.store,
            journal_dir,
            self._prepare,
            queue_size=queue_size,
            batch_size=batch_size,
            flush_interval=flush_interval,
            fsync=fsync,
            durability=durability,
            on_idle=self._maybe_purge if self.purge_interval else None,
        )

    # -- called by the gate (request path: no I/O) --------------------------

    def consent_changed(
        self,
        change: ConsentChange,
        *,
        event: str,
        locale: str | None,
        notice_hash: str | None,
        categories: tuple[str, ...],
        user_agent: str | None = None,
        client: str | None = None,
    ) -> None:
        """Queue the record of one consent event (``put_nowait``)."""
        current = change.current
        if current.consent_id is None:
            return
        self.writer.submit(
            _Event(
                int(time.time() * 1000),
                current.consent_id,
                event,
                change.source,
                current.granted,
                categories,
                current.policy_version,
                notice_hash,
                locale,
                current.expires_at,
                user_agent,
                client if self.ip != "none" else None,
            )
        )

    def link_account(self, consent: Any, user_id: str) -> None:
        """Link a consent to a site account, so exports and erasure by account
        (``cookiegate records export/erase --user``) cover every device the
        member consented on. ``consent`` is a consent id or a request that went
        through the middleware. Queued like a record (no I/O here).

        Raises :class:`InvalidId` (a ``ValueError``) for an id that cannot be
        stored: empty, longer than its column (``user_id`` 200 characters,
        ``consent_id`` 64), a lone surrogate or a NUL character."""
        _storable("user_id", user_id, USER_ID_MAX)
        if isinstance(consent, str):
            consent_id: str | None = consent
        else:
            from cookiegate import consent_of

            consent_id = consent_of(consent).consent_id
        if not consent_id:
            raise LookupError("this visitor has not decided yet: there is no consent to link")
        _storable("consent_id", consent_id, CONSENT_ID_MAX)
        self.writer.submit(_Link(consent_id, user_id, int(time.time() * 1000)))

    def _prepare(self, item: Any) -> Encoded | Link:
        """The encoded record (or link) of a queued item (writer thread)."""
        if isinstance(item, _Link):
            return Link(item.consent_id, item.user_id, item.at_ms)
        ev: _Event = item
        personal: dict[str, Any] | None = None
        if ev.client and self.ip == "truncate":
            personal = {"ip_prefix": truncate_ip(ev.client)}
        elif ev.client and self.ip == "hash":
            personal = {"ip_hmac": hash_ip(ev.client, self._ip_key)}
        record_id, salt = new_id_and_salt(ev.at_ms)
        return PendingRecord(
            record_id=record_id,
            consent_id=ev.consent_id,
            at_ms=ev.at_ms,
            event=ev.event,
            source=ev.source,
            categories={name: name in ev.granted for name in ev.categories},
            salt=salt,
            policy_version=ev.policy_version,
            notice_hash=ev.notice_hash,
            locale=ev.locale,
            expires_at=ev.expires_at,
            ua_family=ua_family(ev.user_agent),
            personal=personal,
        ).encode(_categories_json(ev.granted, ev.categories))

    # -- visitors' rights (I/O: own endpoints and the CLI only) -------------

    def my_data(self, consent_id: str | None) -> dict[str, Any]:
        """What is held about one consent: its records (oldest first), a receipt
        of the latest, whether an account is linked, and the telemetry count.
        Waits briefly (1 s) for queued records, then reads the database.

        ``complete`` says whether every record submitted before the call was in
        the database when it was read; if not (an outage or a backlog),
        ``pending`` is how many records and links (of any visitor) were still
        queued or journalled, and ``records`` may lack the latest ones."""
        if consent_id is None:
            return {**EMPTY_MY_DATA, "records": []}
        complete = self.writer.flush(timeout=1.0)
        pending = 0 if complete else max(1, self.writer.pending())
        history = self.store.history(consent_id, limit=MY_DATA_RECORDS)
        total = len(history)
        if total == MY_DATA_RECORDS:
            total = self.store.count_of(consent_id)
        return {
            "complete": complete,
            "pending": pending,
            "records": history,
            # the latest MY_DATA_RECORDS (a bounded answer); every record is in
            # ``cookiegate records export``
            "records_total": total,
            "receipt": self.receipt(history[-1]) if history else None,
            "account_linked": self.store.account_of(consent_id) is not None,
            "telemetry": self.telemetry.count_for(consent_id) if self.telemetry else 0,
        }

    def withdrawn(self, consent_id: str | None) -> dict[str, int]:
        """Erase the telemetry of a consent that was withdrawn; the counts."""
        if consent_id is None or self.telemetry is None:
            return {"telemetry": 0}
        return {"telemetry": self.telemetry.erase(consent_id)}

    def receipt(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return receipt(
            record,
            controller=self.controller,
            jurisdiction=self.jurisdiction,
            policy_url=self.policy_url,
        )

    def erase_user(self, user_id: str, timeout: float = 10.0) -> dict[str, int]:
        """Erase a member's data: the personal part of their records (tombstones,
        the chain still verifies), their account links and their telemetry.

        Waits (up to ``timeout``) until what is queued or journalled is in the
        database first, so a record or link submitted just before is covered.
        Records of the member's consents still pending after that (an outage)
        are stored erased when they are committed (``cg_erased``); ``pending``
        in the answer counts what was still uncommitted (0 normally)."""
        flushed = self.writer.flush(timeout)
        ids = self.store.consents_of(user_id)
        telemetry = sum(self.telemetry.erase(c) for c in ids) if self.telemetry else 0
        counts = self.store.erase_user(user_id)
        counts["telemetry"] = telemetry
        counts["pending"] = 0 if flushed else max(1, self.writer.pending())
        return counts

    def purge(self, now: float | None = None) -> dict[str, int]:
        """Delete what is past its retention period."""
        now = time.time() if now is None else now
        records = self.store.purge(int((now - self.retention.records_days * DAY) * 1000))
        telemetry = (
            self.telemetry.purge(now - self.retention.telemetry_days * DAY) if self.telemetry else 0
        )
        return {"records": records, "telemetry": telemetry}

    def _maybe_purge(self) -> None:
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + self.purge_interval
            self.purge()

    def verify(self, *, min_retention_days: int | None = None) -> VerifyResult:
        return self.store.verify(min_retention_days=min_retention_days)

    def start(self) -> None:
        """Start the background writer now (idempotent; otherwise the first
        record starts it). It replays, in its thread, the journals a crashed or
        stopped process left in :attr:`writer`'s directory. The middleware calls
        it on its first call (ASGI lifespan start-up, or the first request)."""
        self.writer.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued record is in the database."""
        return self.writer.flush(timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what is queued (within ``timeout``) and stop the writer."""
        done = self.writer.close(timeout)
        self.store.close()
        return done
