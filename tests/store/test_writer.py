"""The background writer and the Recorder: every event reaches the database,
through overload, outages, crashes and concurrent processes."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from cookiegate import ConsentChange, ConsentState
from cookiegate.errors import ConfigError
from cookiegate.records import Recorder, Retention
from cookiegate.records.model import canonical

from .conftest import DB, PG_URL
from .helpers import pending
from .proxy import Proxy

CATS = ("performance", "marketing")


def change(consent_id: str, granted: tuple[str, ...] = ("performance",)) -> ConsentChange:
    now = int(time.time())
    current = ConsentState(
        True,
        granted=frozenset(granted),
        policy_version="2026-11-01",
        consent_id=consent_id,
        decided_at=now,
        expires_at=now + 3600,
        method="banner",
    )
    return ConsentChange(ConsentState(False), current, "banner")


def emit(rec: Recorder, n: int, prefix: str = "visitor") -> None:
    for i in range(n):
        rec.consent_changed(
            change(f"{prefix}-{i:06d}"),
            event="given",
            locale="en",
            notice_hash="cd" * 32,
            categories=CATS,
            user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
            client="203.0.113.77",
        )


def recorder(db: DB, **kwargs: object) -> Recorder:
    kwargs.setdefault("journal_dir", db.tmp / "journal")
    kwargs.setdefault("flush_interval", 0.01)
    return Recorder(db.url, schema=db.schema, **kwargs)  # type: ignore[arg-type]


def test_events_are_recorded_with_minimal_personal_data(db: DB) -> None:
    rec = recorder(db, ip="truncate")
    try:
        emit(rec, 20)
        assert rec.flush(20)
        assert rec.store.count() == 20
        assert rec.verify().ok
        first = rec.store.history("visitor-000000")[0]
        assert first["ua_family"] == "Firefox"
        assert first["personal"] == {"ip_prefix": "203.0.113.0/24"}
        assert first["categories"] == {"performance": True, "marketing": False}
        assert "203.0.113.77" not in json.dumps(first)
    finally:
        rec.close()


def test_no_ip_unless_configured(db: DB) -> None:
    rec = recorder(db)
    try:
        emit(rec, 1)
        assert rec.flush(20)
        assert rec.store.history("visitor-000000")[0]["personal"] is None
    finally:
        rec.close()


def test_ip_hash_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        Recorder(str(tmp_path / "x.db"), ip="hash")
    assert err.value.field == "ip_key"
    with pytest.raises(ConfigError):
        Recorder(str(tmp_path / "x.db"), ip="full")
    with pytest.raises(ConfigError):
        Recorder(str(tmp_path / "x.db"), fsync="sometimes")
    with pytest.raises(ConfigError):
        Retention(records_days=0)


def test_full_queue_overflows_into_the_journal(db: DB) -> None:
    rec = recorder(db, queue_size=1, batch_size=7)
    try:
        emit(rec, 300)
        assert rec.flush(30)
        assert rec.writer.overflowed > 0
        assert rec.writer.dropped == 0
        assert rec.store.count() == 300
        assert rec.verify().ok
    finally:
        rec.close()


def test_journal_durability_mode(db: DB) -> None:
    rec = recorder(db, durability="journal")
    try:
        emit(rec, 50)
        assert rec.flush(20)
        assert rec.store.count() == 50
    finally:
        rec.close()


def test_journal_of_a_crashed_process_is_replayed_once(db: DB) -> None:
    journal = db.tmp / "journal"
    journal.mkdir()
    records = [pending() for _ in range(10)]
    lines = [canonical(r.to_json()) for r in records]
    # a crash after "committed" and before "truncated": the first 4 are already stored
    first = recorder(db)
    first.store.migrate()
    first.store.append(records[:4])
    first.close()
    (journal / "journal-99999-dead.jsonl").write_text("\n".join([*lines, '{"k":"r","torn']))
    rec = recorder(db)
    try:
        emit(rec, 1)
        assert rec.flush(20)
        assert rec.store.count() == 11
        assert rec.verify().ok
        assert not (journal / "journal-99999-dead.jsonl").exists()
    finally:
        rec.close()


def test_close_with_the_database_down_keeps_the_journal(sqlite_db: DB) -> None:
    db = sqlite_db
    rec = recorder(db, busy_timeout_ms=50)
    rec.store.migrate()
    path = db.url.removeprefix("sqlite:///")
    locker = sqlite3.connect(path, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    emit(rec, 25)
    assert not rec.close(timeout=0.5)
    locker.rollback()
    locker.close()
    again = recorder(db)
    try:
        emit(again, 5, prefix="later")
        assert again.flush(20)
        assert again.store.count() == 30
        assert again.verify().ok
    finally:
        again.close()


def _write_while(rec: Recorder, n: int, during: threading.Event) -> int:
    """Emit ``n`` events, the middle third of them while ``during`` is set."""
    sent = 0
    for i in range(n):
        if i == n // 3:
            during.set()
        if i == 2 * n // 3:
            during.clear()
        emit_one(rec, f"fault-{i:06d}")
        sent += 1
        time.sleep(0.002)
    return sent


def emit_one(rec: Recorder, cid: str) -> None:
    rec.consent_changed(change(cid), event="given", locale="en", notice_hash=None, categories=CATS)


def test_fault_sqlite_locked(sqlite_db: DB) -> None:
    """While events are written, another connection holds an exclusive lock on
    the SQLite file, then lets go: every event is stored once, the chain holds."""
    db = sqlite_db
    rec = recorder(db, busy_timeout_ms=50)
    path = db.url.removeprefix("sqlite:///")
    try:
        emit_one(rec, "warm-up-000")
        assert rec.flush(20)
        locked = threading.Event()
        state = {"outage_seen": False}

        def locker() -> None:
            while not locked.is_set():
                time.sleep(0.001)
            conn = sqlite3.connect(path, timeout=1)
            conn.execute("BEGIN EXCLUSIVE")
            while locked.is_set():
                state["outage_seen"] |= rec.writer.outage
                time.sleep(0.01)
            deadline = time.monotonic() + 10  # until the writer met the lock, at most 10 s
            while not state["outage_seen"] and time.monotonic() < deadline:
                state["outage_seen"] |= rec.writer.outage
                time.sleep(0.01)
            time.sleep(0.3)
            state["outage_seen"] |= rec.writer.outage
            conn.rollback()
            conn.close()

        t = threading.Thread(target=locker)
        t.start()
        sent = _write_while(rec, 300, locked)
        t.join()
        assert rec.flush(30)
        assert state["outage_seen"]
        assert rec.store.count() == sent + 1
        result = rec.verify()
        assert result.ok, result
    finally:
        rec.close()


@pytest.mark.postgres
def test_fault_postgres_outage(pg_db: DB) -> None:
    """The writer reaches PostgreSQL through a proxy that is cut (open
    connections broken, new ones refused) and restored mid-stream."""
    db = pg_db
    proxy = Proxy(("127.0.0.1", 5432))
    proxy.start()
    url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    rec = Recorder(url, schema=db.schema, journal_dir=db.tmp / "journal", flush_interval=0.01)
    try:
        emit_one(rec, "warm-up-000")
        assert rec.flush(20)
        down = threading.Event()
        seen = {"outage": False}

        def operator() -> None:
            while not down.is_set():
                time.sleep(0.001)
            proxy.cut()
            while down.is_set():
                seen["outage"] |= rec.writer.outage
                time.sleep(0.01)
            # stay down until the writer has met the cut (a loaded machine may
            # not have tried to write during the window), at most 10 s
            deadline = time.monotonic() + 10
            while not seen["outage"] and time.monotonic() < deadline:
                seen["outage"] |= rec.writer.outage
                time.sleep(0.01)
            time.sleep(0.3)
            seen["outage"] |= rec.writer.outage
            proxy.start()

        t = threading.Thread(target=operator)
        t.start()
        sent = _write_while(rec, 300, down)
        t.join()
        assert rec.flush(60)
        assert seen["outage"]
        assert rec.store.count() == sent + 1
        result = rec.verify()
        assert result.ok, result
    finally:
        rec.close()
        proxy.cut()


WRITER_SCRIPT = r"""
import sys, time
from cookiegate.records import Recorder
from cookiegate import ConsentChange, ConsentState
url, schema, journal, tag = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4]
n = int(sys.argv[5])
rec = Recorder(url, schema=schema, journal_dir=journal, batch_size=5, flush_interval=0.001)
for i in range(n):
    s = ConsentState(True, granted=frozenset(), policy_version="v", consent_id=f"{tag}-{i % 7}",
                     method="banner")
    rec.consent_changed(ConsentChange(ConsentState(False), s, "banner"), event="refused",
                        locale="en", notice_hash=None, categories=("performance",))
    if i % 10 == 0:
        time.sleep(0.001)
ok = rec.close(60)
sys.exit(0 if ok else 3)
"""


def test_two_processes_keep_one_valid_chain(db: DB) -> None:
    store = db.store()
    n = 400
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER_SCRIPT,
                db.url,
                db.schema or "",
                str(db.tmp / f"journal-{tag}"),
                tag,
                str(n),
            ],
            env=env,
        )
        for tag in ("proc-a", "proc-b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    try:
        assert store.count() == 2 * n
        result = store.verify()
        assert result.ok, result
        # the two processes' records interleave in the one chain
        tags = [str(r["consent_id"]).split("-")[1] for r in store.iter_rows()]
        switches = sum(1 for a, b in itertools.pairwise(tags) if a != b)
        assert switches >= 1
        history = store.history("proc-a-3")
        assert all(h["prev_record_id"] == p["record_id"] for p, h in itertools.pairwise(history))
    finally:
        store.close()


def test_purge_by_retention(db: DB) -> None:
    rec = recorder(db, retention=Retention(records_days=30))
    try:
        rec.store.migrate()
        rec.store.append([pending(at_ms=1_000), pending(at_ms=2_000)])
        emit(rec, 3)
        assert rec.flush(20)
        assert rec.purge() == {"records": 2, "telemetry": 0}
        assert rec.store.count() == 3
        assert rec.verify().ok
    finally:
        rec.close()


def test_link_account_and_erase_user(db: DB) -> None:
    class Telemetry:
        def __init__(self) -> None:
            self.held = {"visitor-000000": 4, "visitor-000001": 2}

        def count_for(self, consent_id: str) -> int:
            return self.held.get(consent_id, 0)

        def erase(self, consent_id: str) -> int:
            return self.held.pop(consent_id, 0)

        def purge(self, before: float) -> int:
            return 0

    rec = recorder(db, ip="hash", ip_key="k" * 32, telemetry=Telemetry())
    try:
        emit(rec, 3)
        rec.link_account("visitor-000000", "member-7")
        rec.link_account("visitor-000001", "member-7")
        assert rec.flush(20)
        data = rec.my_data("visitor-000000")
        assert data["account_linked"] is True
        assert data["telemetry"] == 4
        assert len(data["records"][0]["personal"]["ip_hmac"]) == 64
        assert data["receipt"]["piiPrincipalId"] == "visitor-000000"
        counts = rec.erase_user("member-7")
        assert counts["consents"] == 2
        assert counts["telemetry"] == 6
        assert counts["records_personal_erased"] == 2
        assert rec.my_data("visitor-000000")["records"][0]["personal"] == "erased"
        assert rec.verify().ok
        with pytest.raises(LookupError):
            rec.link_account(object(), "member-8")
    finally:
        rec.close()


def test_erase_user_covers_what_is_still_queued(db: DB) -> None:
    """erase_user() first commits what is queued: a record the member made
    just before asking is erased too (it was committed with its IP after)."""
    rec = recorder(db, ip="truncate", flush_interval=0.3)
    try:
        emit_one_ip(rec, "visitor-erase-1")
        rec.link_account("visitor-erase-1", "member-9")
        assert rec.flush(20)
        emit_one_ip(rec, "visitor-erase-1")  # still in the queue (0.3 s linger)
        counts = rec.erase_user("member-9")
        assert counts["records_personal_erased"] == 2
        assert counts["pending"] == 0
        assert rec.flush(20)
        assert [r["personal"] for r in rec.store.history("visitor-erase-1")] == ["erased"] * 2
        assert rec.verify().ok
    finally:
        rec.close()


def emit_one_ip(rec: Recorder, cid: str) -> None:
    rec.consent_changed(
        change(cid), event="given", locale="en", notice_hash=None, categories=CATS,
        client="203.0.113.77",
    )  # fmt: skip


def test_link_account_refuses_ids_that_cannot_be_stored(db: DB) -> None:
    from cookiegate.errors import CookieGateError
    from cookiegate.records import InvalidId

    rec = recorder(db)
    try:
        bad_users = ["", "u" * 201, "user\ud800", "nul\x00", 7]
        for user in bad_users:
            with pytest.raises(InvalidId) as err:
                rec.link_account("visitor-000001", user)  # type: ignore[arg-type]
            assert err.value.field == "user_id"
            assert isinstance(err.value, ValueError | CookieGateError)
        for consent in ["c" * 65, "c\udfff", "c\x00"]:
            with pytest.raises(InvalidId) as err:
                rec.link_account(consent, "member-1")
            assert err.value.field == "consent_id"
        rec.link_account("c" * 64, "u" * 200)  # the column limits themselves are fine
        assert rec.flush(20)
        assert rec.store.consents_of("u" * 200) == ["c" * 64]
        assert rec.writer.dropped == rec.writer.rejected == 0
    finally:
        rec.close()


def test_one_item_that_cannot_be_encoded_is_dropped_alone(db: DB) -> None:
    from cookiegate.records import _Link

    rec = recorder(db, flush_interval=0.3)  # everything below lands in one batch
    try:
        emit(rec, 3, prefix="before")
        rec.writer.submit(_Link("before-000000", "user\ud800", int(time.time() * 1000)))
        emit(rec, 3, prefix="after")
        assert rec.flush(20)
        assert rec.writer.dropped == 1
        assert rec.store.count() == 6
        assert rec.verify().ok
    finally:
        rec.close()


def test_a_batch_the_database_refuses_is_retried_item_by_item(
    db: DB, caplog: pytest.LogCaptureFixture
) -> None:
    """A data error (here an IntegrityError for one consent) is not an outage:
    the refused item is dropped and logged, the others are committed, nothing
    blocks the queue."""
    from sqlalchemy.exc import IntegrityError

    rec = recorder(db, flush_interval=0.2)
    real = rec.store.append_encoded

    def refuse(records: Any, links: Any = (), **kw: Any) -> int:
        if any(r.consent_id == "poison-000000" for r in records):
            raise IntegrityError("INSERT ...", {}, Exception("value too long"))
        return real(records, links, **kw)

    rec.store.append_encoded = refuse  # type: ignore[method-assign]
    try:
        emit(rec, 3, prefix="good")
        emit(rec, 1, prefix="poison")
        emit(rec, 3, prefix="fine")
        assert rec.flush(20)
        assert not rec.writer.outage
        assert rec.writer.rejected == 1
        assert rec.store.count() == 6
        emit(rec, 2, prefix="later")
        assert rec.flush(20)
        assert rec.store.count() == 8
        assert "the database refuses the record" in caplog.text
        assert "poison-000000" in caplog.text
        assert rec.verify().ok
    finally:
        rec.close()


def test_data_errors_are_told_from_outages() -> None:
    from sqlalchemy.exc import DataError, IntegrityError, OperationalError, StatementError

    from cookiegate.records.writer import is_data_error

    assert is_data_error(IntegrityError("s", {}, Exception("dup")))
    assert is_data_error(DataError("s", {}, Exception("too long")))
    assert is_data_error(StatementError("s", "s", {}, UnicodeEncodeError("utf-8", "", 0, 1, "x")))
    assert is_data_error(OverflowError("int too large"))
    assert not is_data_error(OperationalError("s", {}, Exception("database is locked")))
    assert not is_data_error(StatementError("s", "s", {}, ConnectionError("reset")))
    assert not is_data_error(RuntimeError("x"))


@pytest.mark.postgres
def test_postgres_poison_items_do_not_block_the_queue(pg_db: DB) -> None:
    """A link and a record too long for their VARCHAR(64) columns (not caught
    by link_account: submitted as they are) are refused by PostgreSQL; every
    other record still gets in and no outage is reported."""
    from cookiegate.records import _Link

    rec = recorder(pg_db, flush_interval=0.1)
    try:
        emit(rec, 1, prefix="warm")
        assert rec.flush(20)
        rec.writer.submit(_Link("c" * 65, "member-1", int(time.time() * 1000)))
        emit_one(rec, "x" * 65)
        emit(rec, 5, prefix="after")
        assert rec.flush(20)
        assert not rec.writer.outage
        assert rec.writer.rejected == 2
        assert rec.store.count() == 6
        assert rec.verify().ok
    finally:
        rec.close()


def test_my_data_says_when_it_is_incomplete(sqlite_db: DB) -> None:
    db = sqlite_db
    rec = recorder(db, busy_timeout_ms=50)
    try:
        emit_one(rec, "visitor-md-1")
        assert rec.flush(20)
        done = rec.my_data("visitor-md-1")
        assert (done["complete"], done["pending"], len(done["records"])) == (True, 0, 1)
        locker = sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=0.1)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            emit_one(rec, "visitor-md-1")
            emit_one(rec, "visitor-md-1")
            partial = rec.my_data("visitor-md-1")
        finally:
            locker.rollback()
            locker.close()
        assert partial["complete"] is False
        assert partial["pending"] >= 2
        assert len(partial["records"]) == 1
        assert rec.flush(20)
        after = rec.my_data("visitor-md-1")
        assert (after["complete"], after["pending"], len(after["records"])) == (True, 0, 3)
        assert rec.my_data(None)["complete"] is True
    finally:
        rec.close()


def test_the_default_journal_is_per_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Journal lines do not say which database they are for: a process replays
    the orphan journals of its directory into its own database. Two databases
    side by side (or two PostgreSQL URLs from one working directory) had one
    directory, so records meant for one were committed into the other."""
    from cookiegate.records import default_journal_dir

    monkeypatch.chdir(tmp_path)
    a = default_journal_dir(f"sqlite:///{tmp_path}/a.db")
    b = default_journal_dir(f"sqlite:///{tmp_path}/b.db")
    assert a != b and a.parent == b.parent == tmp_path / "cookiegate-journal"
    assert default_journal_dir("a.db") == a  # the same file, however it is named
    pg = "postgresql+psycopg://u:secret@127.0.0.1/test"
    assert default_journal_dir(pg) == default_journal_dir(pg.replace("secret", "other"))
    assert default_journal_dir(pg) != default_journal_dir(pg, schema="s2")
    assert default_journal_dir(pg) != default_journal_dir(pg.replace("/test", "/prod"))
    assert "secret" not in str(default_journal_dir(pg))


def _failing_disk(monkeypatch: pytest.MonkeyPatch, torn: list[int]) -> None:
    """The journal's disk is full while ``torn`` holds a count: each write then
    writes part of its bytes and fails, as a write crossing ENOSPC does."""
    real = os.write

    def write(fd: int, data: Any) -> int:
        if torn and torn[0] > 0:
            torn[0] -= 1
            real(fd, bytes(data)[: max(1, len(data) // 2)])
            raise OSError(28, "No space left on device")
        return real(fd, data)

    # writer.py calls os.write; the module object is shared, so this is os.write
    monkeypatch.setattr(os, "write", write)


def test_a_torn_journal_write_is_undone(sqlite_db: DB, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk during a database outage tears a journal write: its bytes are
    cut off again, so the records after the disk and the database recover are
    all stored (its offsets stay the file's: nothing later is glued to them)."""
    db = sqlite_db
    rec = recorder(db, busy_timeout_ms=50)
    try:
        emit(rec, 3, prefix="before")
        assert rec.flush(10)
        path = db.url.removeprefix("sqlite:///")
        locker = sqlite3.connect(path, timeout=0.1)
        locker.execute("BEGIN EXCLUSIVE")  # the database is down: records journal
        emit(rec, 5, prefix="outage")
        time.sleep(0.2)
        torn = [1]
        _failing_disk(monkeypatch, torn)
        emit(rec, 4, prefix="torn")  # lost: neither the disk nor the database takes them
        deadline = time.monotonic() + 5
        while torn[0] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        emit(rec, 6, prefix="more")  # journalled after the torn write, still in the outage
        time.sleep(0.2)
        locker.rollback()
        locker.close()
        emit(rec, 2, prefix="after")
        assert rec.flush(20)
        assert rec.writer.dropped > 0
        assert rec.store.count() == 3 + 5 + 6 + 2 + (4 - rec.writer.dropped)
        assert rec.verify().ok
    finally:
        rec.close()


def test_an_unwritable_journal_goes_straight_to_the_database(
    sqlite_db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database up, a full journal disk loses nothing."""
    rec = recorder(sqlite_db)
    try:
        emit(rec, 2, prefix="warm")
        assert rec.flush(10)
        _failing_disk(monkeypatch, [10**9])
        emit(rec, 20)
        assert rec.flush(20)
        assert rec.writer.dropped == 0 and rec.store.count() == 22
    finally:
        rec.close()


def test_close_while_a_commit_hangs_leaves_the_journal_to_the_thread(
    sqlite_db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() gives up waiting on a writer stuck in the database: the journal
    stays open for that thread (its descriptor is never closed under it), and
    the thread finishes the work and closes the journal once the call returns."""
    rec = recorder(sqlite_db)
    rec.store.migrate()
    release = threading.Event()
    entered = threading.Event()
    real = rec.store.append_encoded

    def slow(*args: Any, **kwargs: Any) -> int:
        entered.set()
        release.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(rec.store, "append_encoded", slow)
    emit(rec, 6)
    assert entered.wait(10)
    writer = rec.writer
    thread = writer._thread
    assert thread is not None
    assert not rec.close(timeout=0.2)
    os.fstat(writer._fd)  # still open: the thread may write to it
    assert writer.path.exists()
    release.set()
    thread.join(20)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        os.fstat(writer._fd)  # closed by the thread on its way out
    assert not writer.path.exists()  # everything in it was committed
    check = sqlite_db.store()
    try:
        assert check.count() == 6
    finally:
        check.close()


FORK_SCRIPT = r"""
import os, sys
from cookiegate.records import Recorder
rec = Recorder(sys.argv[1], journal_dir=sys.argv[2], flush_interval=0.01)
rec.writer.start()
fd = rec.writer._fd
pid = os.fork()
if pid == 0:
    try:
        os.fstat(fd)
    except OSError:
        os._exit(0)  # the parent's journal is not held open by the child
    os._exit(1)
_, status = os.waitpid(pid, 0)
rec.close()
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_does_not_hold_the_parents_journal(sqlite_db: DB) -> None:
    """A child inherits the parent's journal descriptor, and with it the lock
    that tells other processes the journal is live: the child closes it, so the
    journal is an orphan (replayed) as soon as the parent dies."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORK_SCRIPT, sqlite_db.url,
         str(sqlite_db.tmp / "journal")],
        env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_a_journal_being_made_is_not_an_orphan(sqlite_db: DB) -> None:
    """A journal is made under another name, locked, then named: another
    process's replay never finds it unlocked. Files under that other name are
    not replayed (nor deleted)."""
    journal = sqlite_db.tmp / "journal"
    journal.mkdir()
    making = journal / ".making-journal-1-abcd.jsonl"
    making.write_text(canonical(pending().to_json()) + "\n")
    rec = recorder(sqlite_db)
    try:
        emit(rec, 2)
        assert rec.flush(20)
        assert rec.store.count() == 2
        assert making.exists()
        assert rec.writer.path.name.startswith("journal-")
        assert [p.name for p in journal.iterdir() if p.name.startswith(".making-")] == [making.name]
    finally:
        rec.close()


def test_a_long_outages_journal_is_committed_a_slice_at_a_time(
    sqlite_db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an outage the journal is read in slices of at most _READ_CAP bytes
    (here smaller than one line, which doubles it): everything is committed
    once, whatever the cut."""
    from cookiegate.records import writer as writer_module

    db = sqlite_db
    rec = recorder(db, busy_timeout_ms=50, batch_size=7)
    try:
        emit(rec, 2, prefix="before")
        assert rec.flush(10)
        monkeypatch.setattr(writer_module, "_READ_CAP", 300)
        reads: list[int] = []
        real_open = open

        class Counting:
            def __init__(self, fh: Any) -> None:
                self.fh = fh

            def __enter__(self) -> Counting:
                return self

            def __exit__(self, *exc: object) -> None:
                self.fh.close()

            def seek(self, at: int) -> int:
                return int(self.fh.seek(at))

            def read(self, n: int) -> bytes:
                reads.append(n)
                return bytes(self.fh.read(n))

        def opener(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            fh = real_open(path, mode, *args, **kwargs)
            return Counting(fh) if path == rec.writer.path and mode == "rb" else fh

        monkeypatch.setattr(writer_module, "open", opener, raising=False)
        path = db.url.removeprefix("sqlite:///")
        locker = sqlite3.connect(path, timeout=0.1)
        locker.execute("BEGIN EXCLUSIVE")
        emit(rec, 40, prefix="outage")
        time.sleep(0.3)
        locker.rollback()
        locker.close()
        assert rec.flush(20)
        assert rec.store.count() == 42
        assert rec.verify().ok
        assert reads and max(reads) <= 4 * 300  # never the whole journal (~20 KB)
    finally:
        rec.close()


def test_my_data_holds_the_latest_records_and_counts_them_all(
    sqlite_db: DB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consent toggled without end cannot make my-data unbounded: the answer
    holds the latest MY_DATA_RECORDS records (oldest first) and counts all."""
    from cookiegate import records as records_module

    monkeypatch.setattr(records_module, "MY_DATA_RECORDS", 5)
    rec = recorder(sqlite_db)
    try:
        now = int(time.time() * 1000)
        rec.store.migrate()
        rec.store.append(
            [pending("consent-many", at_ms=now - 1000 + i, event="updated") for i in range(12)]
        )
        data = rec.my_data("consent-many")
        assert data["records_total"] == 12
        assert [r["at_ms"] for r in data["records"]] == [now - 1000 + i for i in range(7, 12)]
        rec.store.append([pending("consent-few", at_ms=now)])
        few = rec.my_data("consent-few")
        assert few["records_total"] == 1 and len(few["records"]) == 1
    finally:
        rec.close()
