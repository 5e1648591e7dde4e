"""The background writer: a bounded in-memory queue, an append-only JSONL journal
and a thread that moves journal lines into the :class:`~.store.Store` in batches.

Every item goes through the journal before the database: the writer thread
appends each drained batch to this process's journal file (``fsync`` per batch
by default), then commits everything between the last committed offset and the
end of the file. When all of it is committed the file is truncated. While the
database is unreachable, items keep going to the journal and the commit is
retried with back-off; a journal left by a crashed (or stopped) process is
replayed by the next writer that starts on the same directory. Appends are
idempotent by record id, so a replay after a crash between "committed" and
"truncated" never duplicates a record.

Overload: when the queue is full, the request thread writes its item to the
journal itself (no fsync; a lock serialises writers). Requests slow down a
little; nothing is dropped unless the disk itself fails (then the item is
counted in :attr:`Writer.dropped` and logged).

Bad items: an item that cannot be encoded is dropped alone (logged, counted in
:attr:`Writer.dropped`), never its batch. A database error that says the data
can never be written (integrity or data errors: a value too long for its
column, a duplicate key) is not an outage: the batch is retried one item per
transaction and only the refused item is dropped (logged, counted in
:attr:`Writer.rejected`). Everything else (connection errors, a locked SQLite
file) is an outage: journalled and retried.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from cookiegate.errors import ConfigError

from .model import Encoded, PendingRecord, canonical
from .store import Link, Store

log = logging.getLogger("cookiegate.records")

FSYNC_POLICIES = ("batch", "never")
DURABILITY = ("queue", "journal")
_WAKE: Any = object()


class Writer:
    """Drains a bounded queue into a store through a journal.

    :param store: where records end up.
    :param journal_dir: directory of the journal files (created).
    :param prepare: turns a queued item into an :class:`~.model.Encoded` record
        or a :class:`~.store.Link` (runs in the writer thread, or in the request
        thread when the queue is full or ``durability="journal"``).
    :param queue_size: bound of the in-memory queue.
    :param batch_size: most items committed in one transaction.
    :param flush_interval: longest wait for more items before committing.
    :param fsync: ``"batch"`` (fsync the journal after each batch the writer
        appends) or ``"never"`` (leave it to the OS).
    :param durability: ``"queue"`` (request thread: ``put_nowait`` only; a crash
        of the process loses what is still in the queue) or ``"journal"``
        (request thread appends to the journal first: a process crash loses
        nothing, at the cost of one ``write()`` per event on the request path).
    :param on_idle: called in the writer thread about every ``flush_interval``
        (background purge).
    """

    def __init__(
        self,
        store: Store,
        journal_dir: str | os.PathLike[str],
        prepare: Callable[[Any], Encoded | Link],
        *,
        queue_size: int = 10_000,
        batch_size: int = 2000,
        flush_interval: float = 0.05,
        fsync: str = "batch",
        durability: str = "queue",
        retry_max: float = 2.0,
        on_idle: Callable[[], None] | None = None,
    ) -> None:
        if not isinstance(queue_size, int) or queue_size < 1:
            raise ConfigError("queue_size", "must be a positive integer")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("batch_size", "must be a positive integer")
        if not isinstance(flush_interval, int | float) or not 0 < flush_interval <= 10:
            raise ConfigError("flush_interval", "must be a number of seconds in (0, 10]")
        if fsync not in FSYNC_POLICIES:
            raise ConfigError("fsync", f"must be one of {', '.join(FSYNC_POLICIES)}")
        if durability not in DURABILITY:
            raise ConfigError("durability", f"must be one of {', '.join(DURABILITY)}")
        self.store = store
        self.dir = Path(journal_dir)
        self.prepare = prepare
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.fsync = fsync
        self.durability = durability
        self.retry_max = retry_max
        self.on_idle = on_idle
        #: items written to the journal by a request thread because the queue was full
        self.overflowed = 0
        #: items lost because the journal could not be written (disk failure)
        self.dropped = 0
        #: items dropped because the database refuses them (a data error)
        self.rejected = 0
        #: records committed to the database by this writer
        self.committed = 0
        #: whether the last commit attempt failed
        self.outage = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        os.register_at_fork(after_in_child=self._after_fork)

    # -- lifecycle -----------------------------------------------------------

    def _after_fork(self) -> None:
        if self._thread is not None:
            # the parent's journal descriptor: closed in the child (not
            # unlocked: the lock is the parent's open file, which it keeps), so
            # the journal is an orphan as soon as the parent is gone
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._thread = None  # the child starts its own thread and journal
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self.dir.mkdir(parents=True, exist_ok=True)
            self._queue: queue.Queue[Any] = queue.Queue(self.queue_size)
            self._lock = threading.Lock()
            self._stop = False
            name = f"journal-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self.path = self.dir / name
            # made under a name orphan replay does not look at, locked, then
            # named: another process never sees it unlocked (and replays and
            # deletes it under us)
            making = self.dir / f".making-{name}"
            fd = os.open(making, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.rename(making, self.path)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    making.unlink()
                raise
            self._fd = fd
            self._exited = False
            self._finish_on_exit = False
            self._size = 0
            self._done = 0
            #: lines in the journal not committed yet
            self._lines = 0
            self._ready = False
            self._retry_at = 0.0
            self._backoff = 0.05
            self._orphans_checked = False
            thread = threading.Thread(target=self._run, name="cookiegate-records", daemon=True)
            self._thread = thread
            thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what can be committed within ``timeout`` and stop. What is not
        committed stays in the journal for the next start. True if all committed."""
        thread = self._thread
        if thread is None:
            return True
        done = self.flush(timeout)
        self._stop = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_WAKE)
        thread.join(timeout=max(1.0, timeout))
        self._thread = None
        with self._lock:
            if not self._exited and thread.is_alive():
                # still in a database call: the thread journals what is left and
                # closes the journal itself when that returns (closing it here
                # would let its writes land in whatever file gets the number)
                self._finish_on_exit = True
                log.warning("cookiegate: the records writer is still busy; it stops on its own")
                return False
        self._finish()
        return done

    def _finish(self) -> None:
        """Journal what is still queued and close the journal (deleted when
        everything in it is committed, else left for the next start)."""
        self._drain_to_journal()  # anything queued after the last batch
        with self._lock:
            os.close(self._fd)  # releases the lock: the file is now an orphan if not empty
            if self._size == 0 or self._done == self._size:
                with contextlib.suppress(OSError):
                    self.path.unlink()

    # -- the request side ----------------------------------------------------

    def submit(self, item: Any) -> None:
        """Hand an item to the writer. Never blocks on the database; with a full
        queue (or ``durability="journal"``) it appends to the journal."""
        if self._thread is None:
            self.start()
        if self.durability == "journal":
            self._journal_now(item)
            item = _WAKE
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if item is not _WAKE:
                self.overflowed += 1
                self._journal_now(item)

    def _journal_now(self, item: Any) -> None:
        try:
            self._append([_line(self.prepare(item))], fsync=False)
        except Exception:
            self.dropped += 1
            log.exception("cookiegate: could not journal a consent record; it is lost")

    def pending(self) -> int:
        """Items not yet committed (queued, or journalled but not in the DB)."""
        if self._thread is None:
            return 0
        queued = 0 if self.durability == "journal" else max(0, self._queue.unfinished_tasks)
        return queued + max(0, self._lines)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed (or ``timeout``)."""
        if self._thread is None:
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0 and self._done == self._size:
                return True
            time.sleep(0.005)
        return False

    # -- the writer thread ---------------------------------------------------

    def _append(self, lines: list[bytes], *, fsync: bool) -> int:
        """Append whole lines to the journal; returns the offset they start at."""
        data = b"".join(lines)
        with self._lock:
            start = self._size
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
                if fsync:
                    os.fsync(self._fd)
            except BaseException:
                # a torn write (a full disk) must not stay: the journal's offsets
                # are ours, and the next lines would be glued to the torn bytes
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
                raise
            self._size += len(data)
            self._lines += len(lines)
        return start

    def _committed_lines(self, n: int) -> None:
        with self._lock:
            self._lines -= n

    def _run(self) -> None:
        while True:
            items = self._take()
            stop = self._stop
            fresh: tuple[int, int, list[Encoded | Link]] | None = None
            docs: list[Encoded | Link] = []
            try:
                if items:
                    docs, lines = self._encode(items)
                    if lines:
                        start = self._append(lines, fsync=self.fsync == "batch")  # one fsync
                        fresh = (start, start + sum(map(len, lines)), docs)
            except Exception:
                # the journal cannot take them (a full or failing disk): straight
                # into the database if it is up, else they are lost (logged)
                if not self._commit_direct(docs):
                    self.dropped += len(items)
                    log.exception("cookiegate: could not journal %d consent record(s)", len(items))
            finally:
                self._done_with(len(items))
            self._commit(fresh)
            if self.on_idle is not None and not self.outage:
                try:
                    self.on_idle()
                except Exception:
                    log.exception("cookiegate: background purge failed")
            if stop:
                with self._lock:
                    self._exited = True
                    finish = self._finish_on_exit
                if finish:
                    self._finish()
                return

    def _encode(self, items: list[Any]) -> tuple[list[Encoded | Link], list[bytes]]:
        """Each item encoded once (journal line, body parts, digest). If one
        cannot be, the items are encoded one by one and only the bad ones are
        dropped (logged, :attr:`dropped`)."""
        try:
            docs = [self.prepare(i) for i in items]
            return docs, [_line(d) for d in docs]
        except Exception:
            pass
        docs, lines = [], []
        for item in items:
            try:
                doc = self.prepare(item)
                line = _line(doc)
            except Exception:
                self.dropped += 1
                log.exception(
                    "cookiegate: a queued %s cannot be encoded; it is dropped",
                    type(item).__name__.strip("_"),
                )
                continue
            docs.append(doc)
            lines.append(line)
        return docs, lines

    def _take(self) -> list[Any]:
        """Everything queued, up to ``batch_size`` items; waits at most
        ``flush_interval`` for the first, then lingers one ``flush_interval`` so
        that one transaction (and one fsync) covers many events under load."""
        items: list[Any] = []
        wait = (
            self.flush_interval
            if self._done == self._size
            else min(self.flush_interval, max(0.0, self._retry_at - time.monotonic()))
        )
        try:
            first = self._queue.get(timeout=max(wait, 0.001))
        except queue.Empty:
            return items
        if first is _WAKE:
            self._done_with(1)
        else:
            items.append(first)
            if not self._stop and self._queue.qsize() < self.batch_size:
                # linger: one transaction per flush interval under load, not per event
                time.sleep(self.flush_interval)
        # everything queued (up to batch_size) in one go under the queue's lock,
        # instead of one get_nowait() (lock, notify) per item
        q = self._queue
        with q.mutex:
            n = min(len(q.queue), self.batch_size - len(items))
            taken = [q.queue.popleft() for _ in range(n)]
            if n:
                q.not_full.notify(n)
        wakes = sum(1 for item in taken if item is _WAKE)
        if wakes:
            self._done_with(wakes)
            taken = [item for item in taken if item is not _WAKE]
        items.extend(taken)
        return items

    def _done_with(self, n: int) -> None:
        """``task_done()`` for ``n`` items at once."""
        if n <= 0:
            return
        q = self._queue
        with q.all_tasks_done:
            q.unfinished_tasks -= n
            if q.unfinished_tasks <= 0:
                q.all_tasks_done.notify_all()

    def _drain_to_journal(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _WAKE:
                self._journal_now(item)
            self._queue.task_done()

    def _commit(self, fresh: tuple[int, int, list[Encoded | Link]] | None = None) -> None:
        if self._done == self._size and self._orphans_checked:
            return
        if time.monotonic() < self._retry_at:
            return
        try:
            if not self._ready:
                self.store.migrate()
                self._ready = True
            if not self._orphans_checked:
                self._replay_orphans()
                self._orphans_checked = True
            if fresh is not None and self._done == fresh[0]:
                # the batch just journalled, committed from memory (no re-read)
                try:
                    self.committed += self.store.append_encoded(
                        [d for d in fresh[2] if isinstance(d, Encoded)],
                        [d for d in fresh[2] if isinstance(d, Link)],
                        fresh=True,
                    )
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    # a duplicate id, or an item the database refuses: through
                    # the journal (de-duplicated; one by one if it fails again)
                else:
                    self._done = fresh[1]
                    self._committed_lines(len(fresh[2]))
            self._commit_own()
        except Exception as exc:
            if not self.outage:
                log.warning("cookiegate: records database unavailable, journalling: %s", exc)
            self.outage = True
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self.retry_max, self._backoff * 2)
            return
        if self.outage:
            log.warning("cookiegate: records database is back; journal replayed")
        self.outage = False
        self._backoff = 0.05

    def _commit_direct(self, docs: list[Encoded | Link]) -> bool:
        """Commit encoded items without the journal; whether they were."""
        if not docs or not self._ready or self.outage:
            return False
        try:
            self.committed += self.store.append_encoded(
                [d for d in docs if isinstance(d, Encoded)],
                [d for d in docs if isinstance(d, Link)],
                fresh=True,
            )
        except Exception:
            return False
        log.warning("cookiegate: journal unwritable; %d record(s) committed directly", len(docs))
        return True

    def _commit_own(self) -> None:
        cap = _READ_CAP
        with open(self.path, "rb") as fh:
            while True:
                with self._lock:
                    end = self._size
                if self._done >= end:
                    break
                fh.seek(self._done)
                # at most ``cap`` bytes at a time: a long outage's journal is
                # not read into memory whole
                chunk = fh.read(min(end - self._done, cap))
                # whole lines only, in batches
                lines = chunk.split(b"\n")
                lines.pop()  # after the last newline: empty, cut by the cap, or being written
                if not lines and len(chunk) == cap:
                    cap *= 2  # one line longer than the cap
                    continue
                offset = self._done
                for i in range(0, len(lines), self.batch_size):
                    part = lines[i : i + self.batch_size]
                    self._commit_part(part)
                    offset += sum(len(x) + 1 for x in part)
                    self._done = offset
                    self._committed_lines(len(part))
                if not lines:
                    break
        with self._lock:
            if self._done == self._size and self._size:
                os.ftruncate(self._fd, 0)
                self._size = self._done = self._lines = 0

    def _commit_part(self, lines: list[bytes]) -> None:
        """Commit journal lines in one transaction; if the database refuses the
        data (not an outage), one transaction per line, dropping the refused
        ones. An outage error propagates (the lines are retried later)."""
        try:
            self.committed += _commit_lines(self.store, lines)
            return
        except Exception as exc:
            if not is_data_error(exc):
                raise
            if len(lines) == 1:
                self._reject(lines[0], exc)
                return
        for line in lines:
            try:
                self.committed += _commit_lines(self.store, [line])
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                self._reject(line, exc)

    def _reject(self, line: bytes, exc: BaseException) -> None:
        """Drop one line the database refuses (logged, :attr:`rejected`)."""
        self.rejected += 1
        try:
            doc = json.loads(line)
            what = f"record {doc.get('record_id')}" if doc.get("k") == "r" else "account link"
            what += f" of consent {str(doc.get('consent_id'))[:80]!r}"
        except ValueError:
            what = "journal line"
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        log.error("cookiegate: the database refuses the %s; it is dropped: %s", what, reason)

    def _replay_orphans(self) -> None:
        for path in sorted(self.dir.glob("journal-*.jsonl")):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    continue  # a live process owns it
                replayed = 0
                with open(fd, "rb", closefd=False) as fh:
                    part: list[bytes] = []
                    for raw in fh:  # line by line: never the whole file in memory
                        line = raw.rstrip(b"\n")
                        if not line.strip():
                            continue
                        part.append(line)
                        if len(part) >= self.batch_size:
                            self._commit_part(part)
                            replayed += len(part)
                            part = []
                    if part:
                        self._commit_part(part)
                        replayed += len(part)
                path.unlink()
                if replayed:
                    log.warning("cookiegate: replayed %d journal line(s) from %s", replayed, path)
            finally:
                os.close(fd)


#: most bytes of the journal read at once when committing it
_READ_CAP = 4 << 20


def is_data_error(exc: BaseException) -> bool:
    """Whether a failed write can never succeed with the same data (an
    integrity or data error, a value the driver cannot encode), as opposed to an
    outage (connection errors, locks, timeouts), which a retry may get past."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        return isinstance(exc.orig, UnicodeError | OverflowError)  # preparing the parameters
    return isinstance(exc, UnicodeError | OverflowError)


def _commit_lines(store: Store, lines: list[bytes]) -> int:
    records: list[Encoded] = []
    links: list[Link] = []
    for raw in lines:
        try:
            doc = json.loads(raw)
            if doc.get("k") == "r":
                records.append(PendingRecord.from_json(doc).encode())
            elif doc.get("k") == "l":
                links.append(_link(doc))
        except (ValueError, KeyError, TypeError, AttributeError):
            log.error("cookiegate: skipping a torn or malformed journal line (%d bytes)", len(raw))
    return store.append_encoded(records, links)


def _line(item: Encoded | Link) -> bytes:
    """The journal line of a prepared item."""
    if isinstance(item, Encoded):
        return item.line
    doc = {"k": "l", "consent_id": item.consent_id, "user_id": item.user_id, "at_ms": item.at_ms}
    return canonical(doc).encode("utf-8") + b"\n"


def _link(doc: dict[str, Any]) -> Link:
    return Link(str(doc["consent_id"]), str(doc["user_id"]), int(doc["at_ms"]))
