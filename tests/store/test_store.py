"""The store against SQLite and PostgreSQL: chain, idempotence, verification,
mutation detection, erasure and purge keep the chain valid."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select, update

from cookiegate.records.model import PendingRecord, canonical, receipt, sha256_hex, truncate_ip
from cookiegate.records.store import STORE_VERSION, Link, Store, chain_t, records_t

from .conftest import DB
from .helpers import pending


def test_append_chains_and_verifies(store: Store) -> None:
    a, b = "consent-aaaaaaaa", "consent-bbbbbbbb"
    assert store.append([pending(a), pending(b), pending(a, event="updated")]) == 3
    assert store.append([pending(a, event="withdrawn")]) == 1
    assert store.count() == 4
    result = store.verify()
    assert result.ok, result
    assert result.count == 4
    history = store.history(a)
    assert [r["event"] for r in history] == ["given", "updated", "withdrawn"]
    assert history[0]["prev_record_id"] is None
    assert history[1]["prev_record_id"] == history[0]["record_id"]
    assert history[2]["prev_record_id"] == history[1]["record_id"]


def test_append_is_idempotent_by_record_id(store: Store) -> None:
    rec = pending()
    assert store.append([rec, rec]) == 1
    assert store.append([rec]) == 0
    assert store.count() == 1
    assert store.verify().ok


def test_migrate_twice_keeps_the_version(store: Store) -> None:
    assert store.migrate() == STORE_VERSION
    assert store.migrate() == STORE_VERSION
    assert store.verify().ok


def _rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(records_t).order_by(records_t.c.seq)).all()
        conn.commit()
    return [dict(r._mapping) for r in rows]


def _restore(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(records_t))
        conn.execute(insert(records_t), rows)


def _edit(value: Any) -> Any:
    if isinstance(value, int):
        return value + 1
    if value is None:
        return "{}"
    text = str(value)
    if text.startswith("{"):  # JSON: change one value, keep it valid JSON
        doc = json.loads(text)
        key = sorted(doc)[0]
        doc[key] = "edited" if doc[key] != "edited" else "edited2"
        return canonical(doc)
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def test_mutations_are_detected_and_named(store: Store) -> None:
    """Exhaustive: edit every column of every record, delete every record, swap
    every adjacent pair: verify fails and names the record."""
    consents = ["consent-aaaaaaaa", "consent-bbbbbbbb"]
    store.append([pending(consents[i % 2], ip="192.0.2.0/24") for i in range(5)])
    original = _rows(store)
    assert store.verify().ok
    columns = [c.name for c in records_t.columns if c.name != "seq"]
    checked = 0
    for i, row in enumerate(original):
        for col in columns:
            mutated = [dict(r) for r in original]
            mutated[i][col] = _edit(row[col])
            _restore(store, mutated)
            result = store.verify()
            assert not result.ok, (i, col)
            assert result.record_id in (row["record_id"], mutated[i]["record_id"]), (
                i,
                col,
                result,
            )
            checked += 1
        # delete record i: the next one is named (or, for the last, the one before)
        _restore(store, [r for j, r in enumerate(original) if j != i])
        result = store.verify()
        assert not result.ok, ("delete", i)
        expected = original[i + 1] if i + 1 < len(original) else original[i - 1]
        assert result.record_id == expected["record_id"], ("delete", i, result)
        checked += 1
        if i + 1 < len(original):
            swapped = [dict(r) for r in original]
            swapped[i]["seq"], swapped[i + 1]["seq"] = original[i + 1]["seq"], original[i]["seq"]
            _restore(store, swapped)
            result = store.verify()
            assert not result.ok, ("swap", i)
            assert result.record_id == original[i + 1]["record_id"], ("swap", i, result)
            checked += 1
    _restore(store, original)
    assert store.verify().ok
    assert checked == len(original) * (len(columns) + 2) - 1


def test_erase_keeps_the_chain_valid(store: Store) -> None:
    a, b = "consent-aaaaaaaa", "consent-bbbbbbbb"
    from cookiegate.records.store import Link

    store.append(
        [pending(a, ip="192.0.2.0/24"), pending(b, ip="198.51.100.0/24"), pending(a)],
        [Link(a, "member-1", 1), Link(b, "member-2", 2)],
    )
    assert store.consents_of("member-1") == [a]
    export = store.export_user("member-1")
    assert [len(c["records"]) for c in export["consents"]] == [2]
    assert export["consents"][0]["receipt"]["version"] == "KI-CR-v1.1.0"
    counts = store.erase_user("member-1")
    assert counts == {"records_personal_erased": 2, "account_links": 1, "consents": 1}
    assert store.consents_of("member-1") == []
    assert all(r["personal"] == "erased" for r in store.history(a))
    assert store.history(b)[0]["personal"] == {"ip_prefix": "198.51.100.0/24"}
    assert store.verify().ok


def test_purge_from_the_start_keeps_the_chain_valid(store: Store) -> None:
    old = [pending(at_ms=1_000 + i) for i in range(7)]
    new = [pending(at_ms=10_000_000 + i) for i in range(3)]
    store.append(old)
    store.append(new)
    seen: list[int] = []
    assert store.purge(5_000_000, progress=seen.append, chunk=3) == 7
    assert sum(seen) == 7
    assert store.count() == 3
    result = store.verify()
    assert result.ok, result
    assert result.count == 3
    store.append([pending()])
    assert store.verify().ok
    assert store.purge(5_000_000) == 0


def test_tail_deletion_is_detected(store: Store) -> None:
    store.append([pending() for _ in range(3)])
    rows = _rows(store)
    with store.engine.begin() as conn:
        conn.execute(delete(records_t).where(records_t.c.seq == rows[-1]["seq"]))
    result = store.verify()
    assert not result.ok
    assert result.record_id == rows[-2]["record_id"]
    assert "missing" in result.reason


def test_edit_of_erased_digest_is_detected(store: Store) -> None:
    store.append([pending("consent-aaaaaaaa", ip="192.0.2.0/24"), pending()])
    store.erase_consents(["consent-aaaaaaaa"])
    assert store.verify().ok
    with store.engine.begin() as conn:
        conn.execute(
            update(records_t)
            .where(records_t.c.consent_id == "consent-aaaaaaaa")
            .values(personal_digest="0" * 64)
        )
    assert not store.verify().ok


_text = st.text(max_size=20)
_records = st.builds(
    PendingRecord,
    record_id=st.uuids().map(str),
    consent_id=st.text(min_size=1, max_size=64),
    at_ms=st.integers(min_value=0, max_value=2**53),
    event=st.sampled_from(["given", "refused", "withdrawn"]),
    source=_text,
    categories=st.dictionaries(_text, st.booleans(), max_size=5),
    policy_version=st.none() | _text,
    notice_hash=st.none() | _text,
    locale=st.none() | _text,
    expires_at=st.none() | st.integers(min_value=0, max_value=2**40),
    ua_family=st.none() | _text,
    personal=st.none() | st.dictionaries(_text, st.none() | _text, max_size=3),
)


@given(_records)
def test_journal_round_trip(rec: PendingRecord) -> None:
    line = canonical(rec.to_json())
    back = PendingRecord.from_json(json.loads(line))
    assert back == rec
    assert back.body("x") == rec.body("x")
    assert back.personal_json() == rec.personal_json()


@given(_records, st.none() | st.uuids().map(str))
def test_encoded_once_is_the_canonical_json(rec: PendingRecord, prev: str | None) -> None:
    enc = rec.encode()
    assert enc.line == canonical(rec.to_json()).encode("utf-8") + b"\n"
    assert enc.body(prev) == rec.body(prev)
    assert enc.personal == canonical({"salt": rec.salt, **(rec.personal or {})})
    assert enc.digest == sha256_hex(enc.personal)


@given(st.ip_addresses())
def test_truncated_ip_contains_the_address(addr: Any) -> None:
    import ipaddress

    net = truncate_ip(str(addr))
    assert net is not None
    network = ipaddress.ip_network(net)
    assert network.prefixlen in (24, 48)
    if network.version == addr.version:
        assert addr in network


def test_truncate_ip_rejects_garbage() -> None:
    assert truncate_ip("not an ip") is None
    assert truncate_ip("203.0.113.77") == "203.0.113.0/24"
    assert truncate_ip("2001:db8:1234:5678::1") == "2001:db8:1234::/48"


def test_receipt_shape() -> None:
    rec = json.loads(pending("consent-aaaaaaaa").body(None))
    doc = receipt(rec, controller={"name": "Shop"}, jurisdiction="EU")
    for key in ("version", "jurisdiction", "consentTimestamp", "collectionMethod",
                "consentReceiptID", "language", "piiPrincipalId", "piiControllers",
                "policyUrl", "services", "sensitive", "spiCat"):  # fmt: skip
        assert key in doc
    assert doc["piiControllers"][0]["piiController"] == "Shop"
    purposes = {p["purpose"]: p["granted"] for p in doc["services"][0]["purposes"]}
    assert purposes == {"marketing": False, "performance": True}


@pytest.mark.parametrize("url", ["", "mysql://x/y", "postgresql+psycopg://h/db?x"])
def test_bad_urls_raise_config_errors(url: str) -> None:
    from cookiegate.errors import ConfigError

    if url.startswith("postgresql"):
        with pytest.raises(ConfigError):
            Store(url, schema="not an identifier")
    else:
        with pytest.raises(ConfigError):
            Store(url)


def test_record_ids_are_uuid7_in_time_order() -> None:
    import time
    import uuid

    from cookiegate.records.model import new_id_and_salt, new_record_id

    before = time.time_ns() // 1_000_000
    ids = [new_record_id() for _ in range(500)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 500
    for rid in ids:
        parsed = uuid.UUID(rid)
        assert (str(parsed), parsed.version, parsed.variant) == (rid, 7, uuid.RFC_4122)
        assert before <= parsed.int >> 80 <= after  # the first 48 bits: the time in ms
    # made later, sorts later (the index on record_id grows at its end)
    earlier, _ = new_id_and_salt(1_796_000_000_000)
    later, _ = new_id_and_salt(1_796_000_000_001)
    assert earlier < later
    assert uuid.UUID(earlier).int >> 80 == 1_796_000_000_000
    # the random part differs between ids of the same millisecond
    same = {new_id_and_salt(1_796_000_000_000)[0] for _ in range(100)}
    assert len(same) == 100
    # a time that does not fit in 48 bits is refused, not wrapped
    for bad in (-1, 1 << 48):
        with pytest.raises(ValueError):
            new_id_and_salt(bad)


# -- verify on a live database: one snapshot ---------------------------------


def test_verify_is_one_snapshot_while_the_app_writes(store: Store) -> None:
    """Records appended, erased and purged while verify walks the chain are
    not seen: no false alarm (the head was read at the start of the walk)."""
    a = "consent-aaaaaaaa"
    store.append([pending(a, ip="192.0.2.0/24", at_ms=1_000), *[pending() for _ in range(9)]])

    def meanwhile(n: int) -> None:
        if not calls:
            store.append([pending(a), pending()])  # the app's writer commits
            store.erase_consents([a])
        calls.append(n)

    calls: list[int] = []
    result = store.verify(meanwhile)
    assert result.ok, result
    assert (result.count, result.head_seq, result.last_seq) == (10, 10, 10)
    assert store.verify().count == 12

    calls.clear()
    purged: list[int] = []

    def purge_once(n: int) -> None:
        if not purged:
            purged.append(store.purge(5_000))

    result = store.verify(purge_once)
    assert purged == [1]
    assert result.ok, result
    assert result.count == 12 and result.anchor_seq == 0  # the state it started from
    assert store.verify().ok


# -- purge anchor: cutoff, report, prefix deletion ----------------------------


def test_purge_records_its_cutoff_and_verify_reports_the_anchor(store: Store) -> None:
    import time

    store.append([pending(at_ms=1_000 + i) for i in range(7)])
    store.append([pending() for _ in range(3)])
    before = int(time.time() * 1000)
    cutoff = before - 30 * 86_400_000
    assert store.purge(cutoff) == 7
    result = store.verify()
    assert result.ok, result
    assert (result.anchor_seq, result.first_seq, result.last_seq, result.head_seq) == (7, 8, 10, 10)
    assert result.anchor_cutoff_ms == cutoff
    assert result.anchor_purged_at_ms is not None
    assert before <= result.anchor_purged_at_ms <= int(time.time() * 1000)
    line = result.summary()
    assert f"seq 8..10, chain head seq 10 {result.head_hash}" in line
    assert f"anchor seq 7 {result.anchor_hash} (purge at " in line
    # the retention the operator states: 30 days kept -> fine; 31 -> too young
    assert store.verify(min_retention_days=30).ok
    bad = store.verify(min_retention_days=31)
    assert not bad.ok
    assert "younger than 31 days" in bad.reason
    # a later purge with an older cutoff moves nothing and keeps the newest cutoff
    assert store.purge(cutoff - 1) == 0
    assert store.verify().anchor_cutoff_ms == cutoff


def _move_anchor(store: Store, seq: int, **values: int | None) -> None:
    from cookiegate.records.store import chain_t

    rows = _rows(store)
    cut = next(r for r in rows if r["seq"] == seq)
    with store.engine.begin() as conn:
        conn.execute(delete(records_t).where(records_t.c.seq <= seq))
        conn.execute(update(chain_t).values(anchor_seq=seq, anchor_hash=cut["hash"], **values))


def _reset(store: Store, rows: list[dict[str, Any]]) -> None:
    """The records and an anchor that never moved."""
    from cookiegate.records.model import GENESIS
    from cookiegate.records.store import chain_t

    _restore(store, rows)
    with store.engine.begin() as conn:
        conn.execute(
            update(chain_t).values(
                anchor_seq=0, anchor_hash=GENESIS, anchor_cutoff_ms=None, anchor_purged_at_ms=None
            )
        )


def test_prefix_deletion_with_a_moved_anchor_is_detected(store: Store) -> None:
    import time

    a = "consent-aaaaaaaa"
    # a visitor gives and withdraws consent, then consents again later
    store.append([pending(a), pending(a, event="withdrawn"), pending(), pending(a), pending()])
    now = int(time.time() * 1000) + 1
    clean = _rows(store)
    head = store.verify().head_hash

    # 1. the anchor moved by hand (no cutoff): not a purge
    _move_anchor(store, 2)
    result = store.verify()
    assert not result.ok
    assert "not by a purge" in result.reason
    assert result.head_hash == head  # the head alone would not have shown it

    # 1b. moved by hand and marked as a schema-1 purge (cutoff NULL, time 0):
    #     this database was made at schema 2, so no schema-1 purge moved it
    _reset(store, clean)
    _move_anchor(store, 2, anchor_cutoff_ms=None, anchor_purged_at_ms=0)
    result = store.verify()
    assert not result.ok
    assert "migration to schema 2 found none" in result.reason

    # 2. a forged, old cutoff: the kept record's previous one (the withdrawal)
    #    is newer than the cutoff, so it was not purged
    _reset(store, clean)
    _move_anchor(store, 2, anchor_cutoff_ms=1_000, anchor_purged_at_ms=2_000)
    result = store.verify()
    assert not result.ok
    assert result.record_id == clean[3]["record_id"]
    assert "is gone" in result.reason

    # 3. a forged recent cutoff: fails the retention the operator states
    _reset(store, clean)
    _move_anchor(store, 3, anchor_cutoff_ms=now, anchor_purged_at_ms=now)
    assert store.verify().ok  # no stated retention; record 4's prev (2) is older than the cutoff
    failed = store.verify(min_retention_days=1)
    assert not failed.ok
    assert "younger than 1 days" in failed.reason

    # 4. what stays undetectable (docs/records.md): an old forged cutoff and no
    #    dangling link; only a line kept from an earlier run shows the move
    _reset(store, clean)
    earlier = store.verify().summary()
    _move_anchor(store, 4, anchor_cutoff_ms=1_000, anchor_purged_at_ms=now)
    later = store.verify(min_retention_days=365)
    assert later.ok
    assert later.head_hash == head
    assert "anchor genesis" in earlier and "anchor seq 4" in later.summary()


def test_migration_from_schema_1(db: Any) -> None:
    from sqlalchemy import text

    from cookiegate.records.store import erased_t, meta_t

    store = db.store()
    try:
        store.append([pending(at_ms=1_000), pending(), pending()])
        assert store.purge(5_000) == 1
        # back to schema 1: no cutoff columns, no cg_erased
        chain = f'"{db.schema}".cg_chain' if db.schema else "cg_chain"
        with store.engine.begin() as conn:
            for col in ("anchor_cutoff_ms", "anchor_purged_at_ms"):
                conn.execute(text(f"ALTER TABLE {chain} DROP COLUMN {col}"))
            erased_t.drop(conn)
            conn.execute(update(meta_t).values(value="1"))
        assert store.schema_version() == 1
        assert store.migrate() == STORE_VERSION == 2
        assert store.schema_version() == 2
        result = store.verify()
        assert result.ok, result
        assert "purge before schema 2: cutoff not recorded" in result.summary()
        old = store.verify(min_retention_days=30)
        assert not old.ok and "cannot be checked" in old.reason
        store.append([pending()])
        store.erase_consents(["consent-x"])  # cg_erased exists again
        assert store.verify().ok
        # the mark holds for the anchor the migration found, not for a later one
        _move_anchor(store, 2, anchor_cutoff_ms=None, anchor_purged_at_ms=0)
        moved = store.verify()
        assert not moved.ok
        assert "the migration to schema 2 found the anchor at seq 1" in moved.reason
    finally:
        store.close()


def test_erasure_covers_records_committed_after_it(store: Store) -> None:
    """A record (or link) made before an erasure but committed after it (it
    was in a writer's queue or journal) is stored erased."""
    import time

    from cookiegate.records.store import Link

    a = "consent-aaaaaaaa"
    made = int(time.time() * 1000) - 50
    store.append([pending(a, ip="192.0.2.0/24", at_ms=made - 10)], [Link(a, "member-1", made)])
    late = pending(a, ip="192.0.2.0/24", at_ms=made)
    assert store.erase_user("member-1")["records_personal_erased"] == 1
    later = pending(a, ip="198.51.100.0/24", at_ms=int(time.time() * 1000) + 60_000)
    assert store.append([late, later], [Link(a, "member-1", made + 1)]) == 2
    personal = [r["personal"] for r in store.history(a)]
    assert personal == ["erased", "erased", {"ip_prefix": "198.51.100.0/24"}]
    assert store.consents_of("member-1") == []
    assert store.verify().ok


def test_purge_bounds() -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "x.db"))
        try:
            store.migrate()
            store.append([pending(at_ms=1_000)])
            assert store.purge(-5) == 0
            assert store.count_before(10**30) == 1  # no OverflowError
            assert store.purge(10**30) == 1
            assert store.verify().ok
        finally:
            store.close()


@given(st.integers(min_value=0, max_value=(1 << 48) - 1), st.binary(min_size=16, max_size=16))
def test_uuid7_time_is_read_back(ms: int, raw: bytes) -> None:
    import uuid

    from cookiegate.records.model import _uuid7
    from cookiegate.records.store import _uuid7_ms

    assert _uuid7_ms(_uuid7(ms, raw)) == ms
    assert _uuid7_ms(str(uuid.UUID(bytes=raw, version=4))) is None
    assert _uuid7_ms(None) is None
    assert _uuid7_ms("not a uuid") is None


def test_history_is_in_the_order_the_decisions_were_made(store: Store) -> None:
    """A record journalled during an outage is stored after a later one: the
    history (and the latest decision my-data and receipts show) goes by time."""
    a = "consent-aaaaaaaa"
    now = int(time.time() * 1000)
    store.append([pending(a, at_ms=now - 1000, event="given")])
    store.append([pending(a, at_ms=now, event="withdrawn")])
    store.append([pending(a, at_ms=now - 500, event="updated")])  # replayed late
    assert [r["event"] for r in store.history(a)] == ["given", "updated", "withdrawn"]
    assert store.verify().ok


def test_an_older_account_link_stored_late_does_not_replace_a_newer_one(store: Store) -> None:
    a = "consent-aaaaaaaa"
    now = int(time.time() * 1000)
    store.append([], [Link(a, "member-new", now)])
    store.append([], [Link(a, "member-old", now - 1000)])  # journalled, replayed late
    assert store.account_of(a) == "member-new"
    store.append([], [Link(a, "member-newer", now + 1000), Link(a, "member-old", now - 10)])
    assert store.account_of(a) == "member-newer"


@pytest.mark.postgres
def test_an_erasure_waits_for_a_writer_holding_the_chain(pg_db: DB) -> None:
    """On PostgreSQL a writer's batch reads the erasure marks under the chain's
    row lock; an erasure takes that lock too, so it cannot slip between the
    batch's read of the marks and its commit (which would store a personal
    part the erasure never saw)."""
    store = pg_db.store()
    try:
        a = "consent-aaaaaaaa"
        store.append([pending(a, ip="192.0.2.0/24")])
        done = threading.Event()
        with store.engine.begin() as conn:
            conn.execute(select(chain_t.c.seq).where(chain_t.c.id == 1).with_for_update())

            def erase() -> None:
                store.erase_consents([a])
                done.set()

            worker = threading.Thread(target=erase)
            worker.start()
            assert not done.wait(0.5)  # blocked on the writer's lock
        worker.join(10)
        assert done.is_set()
        assert store.history(a)[0]["personal"] == "erased"
    finally:
        store.close()
