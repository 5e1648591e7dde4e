"""Storage of consent records through SQLAlchemy Core: SQLite (default, WAL,
``secure_delete``) or PostgreSQL (``postgresql+psycopg://``).

Appends are serialised per chain with a lock taken inside the transaction
(PostgreSQL: ``SELECT ... FOR UPDATE`` on the chain-head row; SQLite:
``BEGIN IMMEDIATE``); the previous hash is read from the head inside that
transaction, so several processes writing at once keep one valid chain.
Appends are idempotent by ``record_id`` (journal replays never duplicate).

``verify`` reads the head and walks the chain inside one read transaction (a
snapshot: SQLite WAL read transaction, PostgreSQL ``REPEATABLE READ``), so
records appended, erased or purged meanwhile never make it report tampering.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring as _enc
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from cookiegate.errors import ConfigError

from .model import GENESIS, Encoded, PendingRecord, chain_hash, record_view, sha256_hex

#: The schema version this code writes; ``migrate()`` brings older ones up.
#: 2: ``cg_chain.anchor_cutoff_ms``/``anchor_purged_at_ms`` (what the purge that
#: moved the anchor deleted, and when) and ``cg_erased`` (erasure applies to
#: records committed after it).
STORE_VERSION = 2
DAY_MS = 86_400_000
#: the largest value a ``BIGINT`` holds
_INT64_MAX = 2**63 - 1
DEFAULT_DB = "sqlite:///cookiegate-records.db"
_CHUNK = 500

metadata = MetaData()

meta_t = Table(
    "cg_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)
chain_t = Table(
    "cg_chain",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("anchor_seq", BigInteger, nullable=False),
    Column("anchor_hash", String(64), nullable=False),
    #: the cutoff (``at_ms`` bound) of the purges that moved the anchor (the
    #: newest one): every purged record is older than it. ``NULL``: never purged
    #: (or purged before schema 2)
    Column("anchor_cutoff_ms", BigInteger, nullable=True),
    #: when the last purge that moved the anchor ran (ms since the epoch); 0 with
    #: no cutoff: the anchor was moved by a purge before schema 2 (unknown cutoff)
    Column("anchor_purged_at_ms", BigInteger, nullable=True),
)
records_t = Table(
    "cg_records",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("record_id", String(36), nullable=False, unique=True),
    Column("consent_id", String(64), nullable=False, index=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("personal", Text, nullable=True),
    Column("personal_digest", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
accounts_t = Table(
    "cg_accounts",
    metadata,
    Column("consent_id", String(64), primary_key=True),
    Column("user_id", String(200), nullable=False, index=True),
    Column("linked_at_ms", BigInteger, nullable=False),
)
#: consents whose personal data was erased, and when: a record (or account link)
#: of the consent made before that time but committed after it (still in a
#: writer's queue or journal, possibly of another process) is stored erased.
erased_t = Table(
    "cg_erased",
    metadata,
    Column("consent_id", String(64), primary_key=True),
    Column("erased_at_ms", BigInteger, nullable=False),
)

#: the limits of the columns an id is stored in (``Recorder.link_account``
#: refuses longer ones instead of leaving the writer a row it can never insert)
CONSENT_ID_MAX = 64
USER_ID_MAX = 200

#: the latest record id of each consent in ``:ids`` (an expanding parameter: the
#: statement is compiled once, not once per batch with a literal per id)
_LAST_OF = select(records_t.c.consent_id, records_t.c.record_id).where(
    records_t.c.seq.in_(
        select(func.max(records_t.c.seq))
        .where(records_t.c.consent_id.in_(bindparam("ids", expanding=True)))
        .group_by(records_t.c.consent_id)
    )
)

_ERASED_OF = select(erased_t.c.consent_id, erased_t.c.erased_at_ms).where(
    erased_t.c.consent_id.in_(bindparam("ids", expanding=True))
)


#: version -> function bringing the schema from version-1 to version. Add
#: entries here (and bump STORE_VERSION) when the tables change.
def _table_name(conn: Connection, name: str) -> str:
    translate = conn.get_execution_options().get("schema_translate_map") or {}
    schema = translate.get(None)
    return f'"{schema}".{name}' if schema else name


#: ``cg_meta`` key: ``"<seq> <hash>"`` of the anchor a schema-1 purge had moved
#: when the database was migrated to schema 2 (absent when nothing was purged)
SCHEMA1_ANCHOR = "schema1_anchor"


def _migrate_2(conn: Connection) -> None:
    """1 -> 2: the purge cutoff and time on the anchor (``cg_erased`` is new, so
    ``create_all`` made it)."""
    table = _table_name(conn, "cg_chain")
    for col in ("anchor_cutoff_ms", "anchor_purged_at_ms"):
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {col} BIGINT"))
    # an anchor a schema-1 purge moved: its cutoff was not recorded (marked 0);
    # which anchor that was is kept, so the mark proves nothing for another
    conn.execute(text(f"UPDATE {table} SET anchor_purged_at_ms = 0 WHERE anchor_seq > 0"))
    row = conn.execute(text(f"SELECT anchor_seq, anchor_hash FROM {table} WHERE id = 1")).first()
    if row is not None and int(row[0]) > 0:
        conn.execute(insert(meta_t).values(key=SCHEMA1_ANCHOR, value=f"{int(row[0])} {row[1]}"))


MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _migrate_2}


@dataclass(frozen=True, slots=True)
class Link:
    """Link a consent id to a site account (``link_account``)."""

    consent_id: str
    user_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :meth:`Store.verify`. ``record_id``/``seq`` name the first
    bad record (for a missing tail: the last record present; ``None`` when the
    anchor itself fails a check).

    The rest describes what was verified, for a line kept outside the database
    (:meth:`summary`): the chain head, the record range, and the purge anchor
    (the seq and hash the first kept record chains to, and the cutoff and time
    of the purge that moved it there)."""

    ok: bool
    count: int
    head_hash: str
    record_id: str | None = None
    seq: int | None = None
    reason: str = ""
    head_seq: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    anchor_seq: int = 0
    anchor_hash: str = GENESIS
    anchor_cutoff_ms: int | None = None
    anchor_purged_at_ms: int | None = None

    def summary(self) -> str:
        """One line: head, record range and anchor (keep it somewhere else; a
        moved anchor or a rewritten head shows against an earlier line)."""
        span = f"seq {self.first_seq}..{self.last_seq}" if self.first_seq else "no records"
        if self.anchor_seq == 0:
            anchor = "anchor genesis (nothing purged)"
        else:
            anchor = f"anchor seq {self.anchor_seq} {self.anchor_hash}"
            if self.anchor_cutoff_ms is None and self.anchor_purged_at_ms == 0:
                anchor += " (purge before schema 2: cutoff not recorded)"
            elif self.anchor_cutoff_ms is None:
                anchor += " (moved without a recorded purge cutoff)"
            else:
                anchor += (
                    f" (purge at {_iso(self.anchor_purged_at_ms)}"
                    f" of records before {_iso(self.anchor_cutoff_ms)})"
                )
        return (
            f"{self.count} records, {span}, chain head seq {self.head_seq} {self.head_hash}, "
            f"{anchor}"
        )


def _iso(ms: int | None) -> str:
    if ms is None:
        return "?"
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def _uuid7_ms(record_id: object) -> int | None:
    """The time (ms) a UUIDv7 record id was made at; ``None`` for other ids."""
    if not isinstance(record_id, str) or len(record_id) != 36 or record_id[14] != "7":
        return None
    try:
        return int(record_id[:8] + record_id[9:13], 16)
    except ValueError:
        return None


def normalise_url(url: str) -> str:
    """A SQLAlchemy URL; a bare path means a SQLite file."""
    if "://" not in url:
        return "sqlite:///" + url
    return url


class Store:
    """The consent-record tables of one database.

    :param url: SQLAlchemy URL (``sqlite:///path.db``,
        ``postgresql+psycopg://user@host/db``) or a SQLite file path.
    :param schema: PostgreSQL schema to use (created if missing).
    :param busy_timeout_ms: SQLite: how long to wait for a lock before failing.
    :param connect_timeout: PostgreSQL: seconds before a connection attempt fails.
    """

    def __init__(
        self,
        url: str = DEFAULT_DB,
        *,
        schema: str | None = None,
        busy_timeout_ms: int = 2000,
        connect_timeout: int = 3,
    ) -> None:
        if not isinstance(url, str) or not url:
            raise ConfigError("url", "must be a SQLAlchemy URL or a SQLite file path")
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except Exception as exc:  # ArgumentError and friends
            raise ConfigError("url", f"not a database URL: {exc}") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError("url", "only sqlite and postgresql (+psycopg) are supported")
        driver = parsed.get_driver_name()
        if driver not in ("pysqlite", "psycopg"):
            raise ConfigError(
                "url",
                f"driver {driver!r} is not supported: use sqlite:/// or postgresql+psycopg://",
            )
        if schema is not None and (self.dialect != "postgresql" or not schema.isidentifier()):
            raise ConfigError("schema", "must be an identifier, and only for PostgreSQL")
        self.schema = schema
        opts: dict[str, Any] = {}
        if schema is not None:
            opts["schema_translate_map"] = {None: schema}
        if self.dialect == "sqlite":
            self.engine = self._sqlite_engine(busy_timeout_ms, immediate=True)
            self.read_engine = self._sqlite_engine(busy_timeout_ms, immediate=False)
        else:
            self.engine = create_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=2,
                connect_args={"connect_timeout": connect_timeout},
            ).execution_options(**opts)
            self.read_engine = self.engine
        self._head_for_update = (
            select(chain_t.c.seq, chain_t.c.hash).where(chain_t.c.id == 1).with_for_update()
        )
        mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        table = f'"{schema}".cg_records' if schema else "cg_records"
        self._insert_sql = (
            f"INSERT INTO {table} (seq, record_id, consent_id, at_ms, body, personal, "
            f"personal_digest, prev_hash, hash) VALUES ({', '.join([mark] * 9)})"
        )

    def _sqlite_engine(self, busy_timeout_ms: int, *, immediate: bool) -> Engine:
        engine = create_engine(self.url, connect_args={"timeout": busy_timeout_ms / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if immediate:  # the writer's connection: index pages stay cached (16 MiB)
                cur.execute("PRAGMA cache_size=-16384")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    # -- schema ------------------------------------------------------------

    def migrate(self) -> int:
        """Create the tables or bring them to :data:`STORE_VERSION`. Safe to run
        from several processes at once. Returns the schema version."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(2766014)"))
                if self.schema:
                    conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))
            metadata.create_all(conn, checkfirst=True)
            row = conn.execute(select(meta_t.c.value).where(meta_t.c.key == "schema")).first()
            version = int(row[0]) if row else 0
            if version == 0:
                conn.execute(insert(meta_t).values(key="schema", value=str(STORE_VERSION)))
                version = STORE_VERSION
            if version > STORE_VERSION:
                raise ConfigError("url", f"database schema {version} is newer than this cookiegate")
            for v in range(version + 1, STORE_VERSION + 1):
                MIGRATIONS[v](conn)
                conn.execute(update(meta_t).where(meta_t.c.key == "schema").values(value=str(v)))
            if conn.execute(select(chain_t.c.id)).first() is None:
                conn.execute(
                    insert(chain_t).values(
                        id=1, seq=0, hash=GENESIS, anchor_seq=0, anchor_hash=GENESIS
                    )
                )
        return STORE_VERSION

    def schema_version(self) -> int | None:
        """The schema version of the database; ``None`` if it has no cookiegate
        tables (nothing is created)."""
        with self.read_engine.connect() as conn:
            if not inspect(conn).has_table("cg_meta", schema=self.schema):
                return None
            row = conn.execute(select(meta_t.c.value).where(meta_t.c.key == "schema")).first()
        return int(row[0]) if row else None

    def drop(self) -> None:
        """Drop the tables (and the schema, if one was given). For tests."""
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            else:
                metadata.drop_all(conn)

    # -- append ------------------------------------------------------------

    def append(self, records: Sequence[PendingRecord], links: Sequence[Link] = ()) -> int:
        """Chain and insert ``records`` (skipping record ids already stored) and
        store ``links``, in one transaction. Returns how many records were new."""
        return self.append_encoded([r.encode() for r in records], links)

    def append_encoded(
        self, records: Sequence[Encoded], links: Sequence[Link] = (), *, fresh: bool = False
    ) -> int:
        """:meth:`append` for records already encoded (the writer's hot path).

        ``fresh``: the record ids were made for this batch and never submitted
        before, so the look-up of already stored ids is skipped (the ``UNIQUE``
        constraint on ``record_id`` still refuses a duplicate; the writer then
        retries through the journal, which de-duplicates)."""
        if not records and not links:
            return 0
        with self.engine.begin() as conn:
            # the lock, and the head read inside it: other processes may have appended
            head = conn.execute(self._head_for_update).one()
            seq, prev_hash = int(head[0]), str(head[1])
            if fresh:
                unique = list(records)
            else:
                by_id: dict[str, Encoded] = {}
                for r in records:
                    by_id.setdefault(r.record_id, r)
                for part in _chunks(list(by_id)):
                    for (rid,) in conn.execute(
                        select(records_t.c.record_id).where(records_t.c.record_id.in_(part))
                    ):
                        by_id.pop(rid, None)
                unique = list(by_id.values())
            consent_ids = {r.consent_id for r in unique}
            last_of = self._last_records(conn, consent_ids)
            # erased consents: what was made before the erasure is stored erased
            erased = self._erased(conn, consent_ids | {link.consent_id for link in links})
            rows = []
            sha256 = hashlib.sha256
            for r in unique:
                seq += 1
                prev_id = last_of.get(r.consent_id)
                body = r.head + ("null" if prev_id is None else _enc(prev_id)) + r.tail
                h = sha256(f"{seq}\n{prev_hash}\n{r.digest}\n{body}".encode()).hexdigest()
                personal: str | None = r.personal
                if erased and r.at_ms <= erased.get(r.consent_id, -1):
                    personal = None
                rows.append(
                    (seq, r.record_id, r.consent_id, r.at_ms, body, personal, r.digest,
                     prev_hash, h)
                )  # fmt: skip
                last_of[r.consent_id] = r.record_id
                prev_hash = h
            if rows:
                # one executemany of a fixed statement through the DBAPI cursor;
                # SQLAlchemy still owns the connection and the transaction
                conn.exec_driver_sql(self._insert_sql, rows)
                conn.execute(
                    update(chain_t).where(chain_t.c.id == 1).values(seq=seq, hash=prev_hash)
                )
            for link in links:
                if erased and link.at_ms <= erased.get(link.consent_id, -1):
                    continue  # linked before the erasure: the erasure removed it
                held = conn.execute(
                    select(accounts_t.c.linked_at_ms).where(
                        accounts_t.c.consent_id == link.consent_id
                    )
                ).first()
                if held is not None and int(held[0]) > link.at_ms:
                    continue  # a later link is stored (this one was journalled): it stands
                conn.execute(delete(accounts_t).where(accounts_t.c.consent_id == link.consent_id))
                conn.execute(
                    insert(accounts_t).values(
                        consent_id=link.consent_id, user_id=link.user_id, linked_at_ms=link.at_ms
                    )
                )
        return len(rows)

    @staticmethod
    def _erased(conn: Connection, consent_ids: set[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for part in _chunks(sorted(consent_ids)):
            for cid, at in conn.execute(_ERASED_OF, {"ids": list(part)}):
                found[cid] = int(at)
        return found

    @staticmethod
    def _last_records(conn: Connection, consent_ids: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for part in _chunks(sorted(consent_ids)):
            for cid, rid in conn.execute(_LAST_OF, {"ids": list(part)}):
                found[cid] = rid
        return found

    # -- reading -----------------------------------------------------------

    def count(self) -> int:
        with self.read_engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(records_t)).scalar_one())

    def history(self, consent_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Every stored record of one consent (the latest ``limit`` of them),
        oldest first: by the time it was made, then by its place in the chain
        (a record journalled during an outage may be stored after a later one:
        the last is the latest decision all the same)."""
        query = select(records_t.c.body, records_t.c.personal).where(
            records_t.c.consent_id == consent_id
        )
        with self.read_engine.connect() as conn:
            if limit is None:
                rows = conn.execute(query.order_by(records_t.c.at_ms, records_t.c.seq)).all()
            else:
                latest = conn.execute(
                    query.order_by(records_t.c.at_ms.desc(), records_t.c.seq.desc()).limit(limit)
                ).all()
                rows = latest[::-1]
        return [record_view(b, p) for b, p in rows]

    def count_of(self, consent_id: str) -> int:
        """How many records one consent has."""
        with self.read_engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(records_t)
                    .where(records_t.c.consent_id == consent_id)
                ).scalar_one()
            )

    def account_of(self, consent_id: str) -> str | None:
        with self.read_engine.connect() as conn:
            row = conn.execute(
                select(accounts_t.c.user_id).where(accounts_t.c.consent_id == consent_id)
            ).first()
        return None if row is None else str(row[0])

    def consents_of(self, user_id: str) -> list[str]:
        with self.read_engine.connect() as conn:
            rows = conn.execute(
                select(accounts_t.c.consent_id)
                .where(accounts_t.c.user_id == user_id)
                .order_by(accounts_t.c.linked_at_ms)
            ).all()
        return [str(r[0]) for r in rows]

    def iter_rows(self, page: int = 2000) -> Iterator[dict[str, Any]]:
        """Every record row in chain order (keyset pages)."""
        after = -1
        while True:
            with self.read_engine.connect() as conn:
                rows = conn.execute(
                    select(records_t)
                    .where(records_t.c.seq > after)
                    .order_by(records_t.c.seq)
                    .limit(page)
                ).all()
            if not rows:
                return
            for row in rows:
                yield dict(row._mapping)
            after = int(rows[-1].seq)

    def head(self) -> tuple[int, str, int, str]:
        """``(seq, hash, anchor_seq, anchor_hash)`` of the chain head."""
        with self.read_engine.connect() as conn:
            row = conn.execute(
                select(chain_t.c.seq, chain_t.c.hash, chain_t.c.anchor_seq, chain_t.c.anchor_hash)
            ).one()
        return int(row[0]), str(row[1]), int(row[2]), str(row[3])

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One read transaction: every read inside sees the same committed state
        (SQLite: a WAL read transaction; PostgreSQL: ``REPEATABLE READ``)."""
        with self.read_engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def verify(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        min_retention_days: int | None = None,
        now: int | None = None,
    ) -> VerifyResult:
        """Check the whole chain: sequence numbers, links, hashes, the indexed
        columns against the hashed body, and the chain head. Names the first
        record that was edited, deleted or reordered.

        The head and every record are read in one snapshot: records appended,
        erased or purged while it runs are not seen, so a live database never
        fails. With ``min_retention_days``, also fails when the purge anchor
        shows that records younger than that were purged (or cannot show it).
        After a purge, a kept record whose previous record (of the same consent)
        is gone although its UUIDv7 time is not before the recorded purge cutoff
        fails too: those records were deleted by something other than a purge.
        ``now``: ms since the epoch (default: the clock)."""
        with self._snapshot() as conn:
            return self._verify(conn, progress, min_retention_days, now)

    def _verify(
        self,
        conn: Connection,
        progress: Callable[[int], None] | None,
        min_retention_days: int | None,
        now: int | None,
    ) -> VerifyResult:
        head = conn.execute(
            select(
                chain_t.c.seq,
                chain_t.c.hash,
                chain_t.c.anchor_seq,
                chain_t.c.anchor_hash,
                chain_t.c.anchor_cutoff_ms,
                chain_t.c.anchor_purged_at_ms,
            ).where(chain_t.c.id == 1)
        ).one()
        head_seq, head_hash = int(head[0]), str(head[1])
        anchor_seq, anchor_hash = int(head[2]), str(head[3])
        cutoff = None if head[4] is None else int(head[4])
        purged_at = None if head[5] is None else int(head[5])
        expected, prev = anchor_seq + 1, anchor_hash
        count = 0
        first_seq: int | None = None
        last_id: str | None = None

        def result(
            ok: bool, reason: str = "", rid: str | None = None, at: int | None = None
        ) -> VerifyResult:
            return VerifyResult(
                ok,
                count,
                head_hash,
                rid,
                at,
                reason,
                head_seq=head_seq,
                first_seq=first_seq,
                last_seq=None if first_seq is None else expected - 1,
                anchor_seq=anchor_seq,
                anchor_hash=anchor_hash,
                anchor_cutoff_ms=cutoff,
                anchor_purged_at_ms=purged_at,
            )

        # records of a purged consent that chain to a record newer than the cutoff
        check_gone = anchor_seq > 0 and cutoff is not None
        after = -1
        while True:
            rows = conn.execute(
                select(records_t)
                .where(records_t.c.seq > after)
                .order_by(records_t.c.seq)
                .limit(2000)
            ).all()
            if not rows:
                break
            after = int(rows[-1].seq)
            docs: list[dict[str, Any] | None] = []
            for row in rows:
                try:
                    doc = json.loads(str(row.body))
                except ValueError:
                    doc = None
                docs.append(doc if isinstance(doc, dict) else None)
            gone: set[str] = set()
            if check_gone and cutoff is not None:  # (check_gone implies a cutoff)
                ids_here = {str(row.record_id) for row in rows}
                suspects = {
                    str(d["prev_record_id"])
                    for d in docs
                    if d is not None
                    and d.get("prev_record_id") not in (None, *ids_here)
                    and (_uuid7_ms(d.get("prev_record_id")) or -1) >= cutoff
                }
                gone = suspects - self._existing(conn, suspects)
            for row, doc in zip(rows, docs, strict=True):
                rid, seq = str(row.record_id), int(row.seq)
                if seq != expected:
                    what = "deleted" if seq > expected else "duplicated"
                    return result(
                        False,
                        f"record(s) before this one {what} (expected seq {expected})",
                        rid,
                        seq,
                    )
                if row.prev_hash != prev:
                    return result(
                        False,
                        "prev_hash does not match the record before (deleted or reordered)",
                        rid,
                        seq,
                    )
                body = str(row.body)
                if chain_hash(seq, prev, str(row.personal_digest), body) != row.hash:
                    return result(
                        False, "hash does not match the content (record edited or moved)", rid, seq
                    )
                if doc is None:
                    return result(False, "body is not JSON", rid, seq)
                for col in ("record_id", "consent_id", "at_ms"):
                    if doc.get(col) != row._mapping[col]:
                        return result(
                            False, f"column {col} differs from the hashed body (edited)", rid, seq
                        )
                personal = row.personal
                if personal is not None and sha256_hex(str(personal)) != row.personal_digest:
                    return result(
                        False, "personal part does not match its digest (edited)", rid, seq
                    )
                if doc.get("prev_record_id") in gone:
                    made = _uuid7_ms(doc.get("prev_record_id"))
                    return result(
                        False,
                        f"the previous record of this consent ({doc.get('prev_record_id')}, made "
                        f"{_iso(made)}) is gone, but the anchor says only records before "
                        f"{_iso(cutoff)} were purged (records deleted)",
                        rid,
                        seq,
                    )
                if first_seq is None:
                    first_seq = seq
                prev, expected, last_id = str(row.hash), seq + 1, rid
                count += 1
                if progress is not None:
                    progress(1)
        if expected - 1 != head_seq or prev != head_hash:
            return result(
                False,
                f"chain head says seq {head_seq}; the record(s) after this one are missing"
                if expected - 1 < head_seq
                else "the chain head does not match the last record (edited)",
                last_id,
                expected - 1,
            )
        if anchor_seq > 0 and cutoff is None and purged_at == 0:
            # marked as moved by a schema-1 purge: only the anchor the migration found
            marked = conn.execute(
                select(meta_t.c.value).where(meta_t.c.key == SCHEMA1_ANCHOR)
            ).scalar()
            if marked != f"{anchor_seq} {anchor_hash}":
                return result(
                    False,
                    f"the anchor at seq {anchor_seq} is marked as moved by a purge before "
                    "schema 2, but the migration to schema 2 found "
                    + (f"the anchor at seq {str(marked).split(' ')[0]}" if marked else "none")
                    + ": the records before it were deleted",
                    None,
                    anchor_seq,
                )
        if anchor_seq > 0 and cutoff is None and purged_at != 0:
            # every purge since schema 2 records its cutoff
            return result(
                False,
                f"the anchor was moved to seq {anchor_seq}, but not by a purge (no cutoff "
                "recorded): the records before it were deleted",
                None,
                anchor_seq,
            )
        if min_retention_days is not None and anchor_seq > 0:
            clock = now_ms() if now is None else now
            if cutoff is None:
                return result(
                    False,
                    f"the anchor was moved to seq {anchor_seq} by a purge before schema 2, "
                    "which did not record its cutoff: the retention cannot be checked",
                    None,
                    anchor_seq,
                )
            ran = clock if purged_at is None else min(purged_at, clock)
            if cutoff > ran - min_retention_days * DAY_MS:
                return result(
                    False,
                    f"the purge at {_iso(purged_at)} deleted records up to {_iso(cutoff)}, "
                    f"younger than {min_retention_days} days",
                    None,
                    anchor_seq,
                )
        return result(True)

    @staticmethod
    def _existing(conn: Connection, record_ids: set[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(sorted(record_ids)):
            found.update(
                str(r[0])
                for r in conn.execute(
                    select(records_t.c.record_id).where(records_t.c.record_id.in_(part))
                )
            )
        return found

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything held about a site account: its linked consents and their
        records (with a Kantara receipt of the latest record of each)."""

        consents = [self.export_consent(cid) for cid in self.consents_of(user_id)]
        return {"user_id": user_id, "consents": consents}

    def export_consent(self, consent_id: str) -> dict[str, Any]:
        """Every record of one consent (my-data holds only the latest
        :data:`~cookiegate.records.MY_DATA_RECORDS`), with a receipt of the latest."""
        from .model import receipt

        history = self.history(consent_id)
        return {
            "consent_id": consent_id,
            "records": history,
            "receipt": receipt(history[-1]) if history else None,
        }

    # -- erasure and retention ---------------------------------------------

    def erase_consents(self, consent_ids: Iterable[str]) -> dict[str, int]:
        """Tombstone the personal part of the consents' records and delete their
        account links. The chain still verifies (the digests stay).

        The consents are also marked erased (``cg_erased``) with the time: a
        record or account link of theirs made before now but committed later
        (still in a writer's queue or journal, in this process or another) is
        stored without its personal part, and the link is not stored."""
        ids = sorted(set(consent_ids))
        erased = links = 0
        with self.engine.begin() as conn:
            # the writers' lock (PostgreSQL; SQLite writes one at a time): a
            # writer's batch that read "not erased" commits before this erases,
            # or reads the mark after it
            conn.execute(self._head_for_update).one()
            at = now_ms()
            for part in _chunks(ids):
                conn.execute(delete(erased_t).where(erased_t.c.consent_id.in_(part)))
                conn.execute(
                    insert(erased_t), [{"consent_id": c, "erased_at_ms": at} for c in part]
                )
                erased += conn.execute(
                    update(records_t)
                    .where(records_t.c.consent_id.in_(part), records_t.c.personal.is_not(None))
                    .values(personal=None)
                ).rowcount
                links += conn.execute(
                    delete(accounts_t).where(accounts_t.c.consent_id.in_(part))
                ).rowcount
        self._scrub()
        return {"records_personal_erased": erased, "account_links": links}

    def erase_user(self, user_id: str) -> dict[str, int]:
        ids = self.consents_of(user_id)
        counts = self.erase_consents(ids)
        counts["consents"] = len(ids)
        return counts

    def purge(
        self,
        before_ms: int,
        progress: Callable[[int], None] | None = None,
        chunk: int = 1000,
    ) -> int:
        """Delete the records older than ``before_ms`` from the start of the
        chain (stopping at the first newer one) and move the anchor to the hash of
        the last deleted record, so ``verify`` keeps passing. The anchor keeps the
        cutoff (the newest of the purges that moved it: every purged record is
        older than it) and the time of the purge, which ``verify`` reports."""
        if isinstance(before_ms, bool) or not isinstance(before_ms, int):
            raise TypeError("before_ms must be an int (ms since the epoch)")
        if before_ms <= 0:
            return 0  # nothing is older than the epoch
        before_ms = min(before_ms, _INT64_MAX)
        total = 0
        while True:
            with self.engine.begin() as conn:
                anchor = conn.execute(
                    select(chain_t.c.anchor_seq, chain_t.c.anchor_cutoff_ms)
                    .where(chain_t.c.id == 1)
                    .with_for_update()
                ).one()
                anchor_seq = int(anchor[0])
                cutoff = before_ms if anchor[1] is None else max(int(anchor[1]), before_ms)
                rows = conn.execute(
                    select(records_t.c.seq, records_t.c.at_ms, records_t.c.hash)
                    .where(records_t.c.seq > anchor_seq)
                    .order_by(records_t.c.seq)
                    .limit(chunk)
                ).all()
                old = []
                for row in rows:
                    if int(row.at_ms) >= before_ms:
                        break
                    old.append(row)
                if not old:
                    break
                last = old[-1]
                conn.execute(delete(records_t).where(records_t.c.seq <= int(last.seq)))
                conn.execute(
                    update(chain_t)
                    .where(chain_t.c.id == 1)
                    .values(
                        anchor_seq=int(last.seq),
                        anchor_hash=str(last.hash),
                        anchor_cutoff_ms=cutoff,
                        anchor_purged_at_ms=now_ms(),
                    )
                )
                # erasure marks older than the cutoff: their records are gone
                conn.execute(delete(erased_t).where(erased_t.c.erased_at_ms < before_ms))
            total += len(old)
            if progress is not None:
                progress(len(old))
            if len(old) < len(rows) or len(rows) < chunk:
                break
        if total:
            self._scrub()
        return total

    def count_before(self, before_ms: int) -> int:
        before_ms = max(0, min(before_ms, _INT64_MAX))
        with self.read_engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(records_t).where(records_t.c.at_ms < before_ms)
                ).scalar_one()
            )

    def _scrub(self) -> None:
        """Make deleted data unrecoverable where the engine allows it. SQLite:
        ``secure_delete`` zeroes freed space; a WAL checkpoint then overwrites the
        main file and truncates the WAL. PostgreSQL: see docs/records.md (dead
        tuples stay until VACUUM; run ``VACUUM`` on the tables)."""
        if self.dialect == "sqlite":
            raw = self.read_engine.raw_connection()
            try:
                cur = raw.cursor()
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                cur.close()
            finally:
                raw.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]
