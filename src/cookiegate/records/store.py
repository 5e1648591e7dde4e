"""Storage of consent records through SQLAlchemy Core: SQLite (default, WAL,
``secure_delete``) or PostgreSQL (``postgresql+psycopg://``).

Appends are serialised per chain with a lock taken inside the transaction
(PostgreSQL: ``SELECT ... FOR UPDATE`` on the chain-head row; SQLite:
``BEGIN IMMEDIATE``); the previous hash is read from the head inside that
transaction, so several processes writing at once keep one valid chain.
Appends are idempotent by ``record_id`` (journal replays never duplicate).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url

from cookiegate.errors import ConfigError

from .model import GENESIS, Encoded, PendingRecord, chain_hash, record_view, sha256_hex

#: The schema version this code writes; ``migrate()`` brings older ones up.
STORE_VERSION = 1
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

#: the latest record id of each consent in ``:ids`` (an expanding parameter: the
#: statement is compiled once, not once per batch with a literal per id)
_LAST_OF = select(records_t.c.consent_id, records_t.c.record_id).where(
    records_t.c.seq.in_(
        select(func.max(records_t.c.seq))
        .where(records_t.c.consent_id.in_(bindparam("ids", expanding=True)))
        .group_by(records_t.c.consent_id)
    )
)

#: version -> function bringing the schema from version-1 to version. Add
#: entries here (and bump STORE_VERSION) when the tables change.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


@dataclass(frozen=True, slots=True)
class Link:
    """Link a consent id to a site account (``link_account``)."""

    consent_id: str
    user_id: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :meth:`Store.verify`. ``record_id``/``seq`` name the first
    bad record (for a missing tail: the last record present)."""

    ok: bool
    count: int
    head_hash: str
    record_id: str | None = None
    seq: int | None = None
    reason: str = ""


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
            last_of = self._last_records(conn, {r.consent_id for r in unique})
            rows = []
            sha256 = hashlib.sha256
            for r in unique:
                seq += 1
                prev_id = last_of.get(r.consent_id)
                body = r.head + ("null" if prev_id is None else _enc(prev_id)) + r.tail
                h = sha256(f"{seq}\n{prev_hash}\n{r.digest}\n{body}".encode()).hexdigest()
                rows.append(
                    (seq, r.record_id, r.consent_id, r.at_ms, body, r.personal, r.digest,
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
                conn.execute(delete(accounts_t).where(accounts_t.c.consent_id == link.consent_id))
                conn.execute(
                    insert(accounts_t).values(
                        consent_id=link.consent_id, user_id=link.user_id, linked_at_ms=link.at_ms
                    )
                )
        return len(rows)

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

    def history(self, consent_id: str) -> list[dict[str, Any]]:
        """Every stored record of one consent, oldest first."""
        with self.read_engine.connect() as conn:
            rows = conn.execute(
                select(records_t.c.body, records_t.c.personal)
                .where(records_t.c.consent_id == consent_id)
                .order_by(records_t.c.seq)
            ).all()
        return [record_view(b, p) for b, p in rows]

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

    def verify(self, progress: Callable[[int], None] | None = None) -> VerifyResult:
        """Check the whole chain: sequence numbers, links, hashes, the indexed
        columns against the hashed body, and the chain head. Names the first
        record that was edited, deleted or reordered."""
        head_seq, head_hash, anchor_seq, anchor_hash = self.head()
        expected, prev = anchor_seq + 1, anchor_hash
        count = 0
        last_id: str | None = None
        for row in self.iter_rows():
            rid, seq = str(row["record_id"]), int(row["seq"])

            def bad(reason: str, rid: str = rid, seq: int = seq, n: int = count) -> VerifyResult:
                return VerifyResult(False, n, head_hash, rid, seq, reason)

            if seq != expected:
                what = "deleted" if seq > expected else "duplicated"
                return bad(f"record(s) before this one {what} (expected seq {expected})")
            if row["prev_hash"] != prev:
                return bad("prev_hash does not match the record before (deleted or reordered)")
            body = str(row["body"])
            if chain_hash(seq, prev, str(row["personal_digest"]), body) != row["hash"]:
                return bad("hash does not match the content (record edited or moved)")
            try:
                doc = json.loads(body)
            except ValueError:
                return bad("body is not JSON")
            for col in ("record_id", "consent_id", "at_ms"):
                if doc.get(col) != row[col]:
                    return bad(f"column {col} differs from the hashed body (edited)")
            personal = row["personal"]
            if personal is not None and sha256_hex(str(personal)) != row["personal_digest"]:
                return bad("personal part does not match its digest (edited)")
            prev, expected, last_id = str(row["hash"]), seq + 1, rid
            count += 1
            if progress is not None:
                progress(1)
        if expected - 1 != head_seq or prev != head_hash:
            return VerifyResult(
                False,
                count,
                head_hash,
                last_id,
                expected - 1,
                f"chain head says seq {head_seq}; the record(s) after this one are missing"
                if expected - 1 < head_seq
                else "the chain head does not match the last record (edited)",
            )
        return VerifyResult(True, count, head_hash)

    def export_user(self, user_id: str) -> dict[str, Any]:
        """Everything held about a site account: its linked consents and their
        records (with a Kantara receipt of the latest record of each)."""
        from .model import receipt

        consents = []
        for cid in self.consents_of(user_id):
            history = self.history(cid)
            consents.append(
                {
                    "consent_id": cid,
                    "records": history,
                    "receipt": receipt(history[-1]) if history else None,
                }
            )
        return {"user_id": user_id, "consents": consents}

    # -- erasure and retention ---------------------------------------------

    def erase_consents(self, consent_ids: Iterable[str]) -> dict[str, int]:
        """Tombstone the personal part of the consents' records and delete their
        account links. The chain still verifies (the digests stay)."""
        ids = sorted(set(consent_ids))
        erased = links = 0
        with self.engine.begin() as conn:
            for part in _chunks(ids):
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
        the last deleted record, so ``verify`` keeps passing."""
        total = 0
        while True:
            with self.engine.begin() as conn:
                anchor_seq = int(
                    conn.execute(
                        select(chain_t.c.anchor_seq).where(chain_t.c.id == 1).with_for_update()
                    ).scalar_one()
                )
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
                    .values(anchor_seq=int(last.seq), anchor_hash=str(last.hash))
                )
            total += len(old)
            if progress is not None:
                progress(len(old))
            if len(old) < len(rows) or len(rows) < chunk:
                break
        if total:
            self._scrub()
        return total

    def count_before(self, before_ms: int) -> int:
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
