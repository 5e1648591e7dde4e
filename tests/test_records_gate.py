"""What the gate records and tells a visitor when the records side misbehaves
or the consent it replaces was stale, through both adapters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cookiegate import Gate
from cookiegate.asgi import CookieGateMiddleware as AsgiGate
from cookiegate.errors import ConfigError
from cookiegate.records import Recorder, Retention
from cookiegate.records.model import canonical

from .conftest import Client, make_gate
from .store.helpers import pending

JSON = ("content-type", "application/json")
FORM = ("content-type", "application/x-www-form-urlencoded")
SAME = ("sec-fetch-site", "same-origin")


class BrokenTelemetry:
    """A telemetry store that is down: counting works, erasing fails."""

    def __init__(self) -> None:
        self.held = 3

    def count_for(self, consent_id: str) -> int:
        return self.held

    def erase(self, consent_id: str) -> int:
        raise ConnectionError("telemetry store unavailable")

    def purge(self, before: float) -> int:
        return 0


@pytest.fixture
def broken(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(
        str(tmp_path / "records.db"),
        journal_dir=tmp_path / "journal",
        telemetry=BrokenTelemetry(),
        flush_interval=0.01,
    )
    yield rec
    rec.close()


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(str(tmp_path / "records.db"), journal_dir=tmp_path / "j", flush_interval=0.01)
    yield rec
    rec.close()


def test_a_failed_telemetry_erasure_is_told_not_hidden(
    broken: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    """The withdrawal itself holds (the consent cookie says so), but the visitor
    is told that their telemetry could not be erased and to try again - never
    "0 destroyed" while it is still held."""
    gate = make_gate(records=broken)
    call = client_for(gate)
    token = gate.make_token(["performance"], method="banner", consent_id="visitor-broken-1")
    cookie = ("cookie", f"cookiegate={token}; _ga=GA1.1.1")
    res = call("POST", "/_cookiegate/withdraw", [JSON, SAME, cookie], b"{}")
    doc = res.json()
    assert res.status == 200 and doc["withdrawn"] is True and doc["decided"] is True
    assert doc["destroyed"] == {"telemetry": None, "cookies": 1}
    assert "could not be erased" in doc["error"]
    # without JavaScript: the page the browser lands on says the same
    gone = call("POST", "/_cookiegate/withdraw", [FORM, SAME, cookie], b"next=/shop")
    assert gone.status == 303 and b"could not be erased" in gone.body
    after = [("cookie", f"cookiegate={gone.cookie_value('cookiegate')}")]
    page = call("GET", gone.header("location") or "", after).body.decode()
    assert "telemetry records could not be erased just now" in page
    assert "Destroyed:" not in page
    ko = call("GET", (gone.header("location") or "") + "&lang=ko", after).body.decode()
    assert "원격 측정 기록은 지금 삭제하지 못했습니다" in ko


@pytest.mark.parametrize("gpc", [False, True])
@pytest.mark.parametrize("old", ["stale", "expired"])
def test_a_choice_replacing_a_stale_or_expired_consent_is_a_reconsent(
    recorder: Recorder, client_for: Callable[[Gate], Client], gpc: bool, old: str
) -> None:
    """With or without a GPC signal (which stands in for the old consent until
    the visitor chooses), the choice that replaces a consent of an older policy
    version or one that expired is recorded as ``reconsent``."""
    import time

    gate = make_gate(records=recorder)
    cid = f"returning-{old}-{gpc}"
    if old == "stale":
        token = gate.make_token(["performance"], consent_id=cid, policy_version="2020")
    else:
        token = gate.make_token(
            ["performance"], consent_id=cid, decided_at=int(time.time()) - 400 * 86400
        )
    headers = [FORM, SAME, ("cookie", f"cookiegate={token}")]
    if gpc:
        headers.append(("sec-gpc", "1"))
    res = client_for(gate)("POST", "/_cookiegate/consent", headers, b"action=accept_all")
    assert res.status == 303
    assert recorder.flush(10)
    [rec] = recorder.store.history(cid)
    assert rec["event"] == "reconsent", rec


def test_records_kept_less_long_than_a_decision_is_valid_are_refused(tmp_path: Path) -> None:
    """The proof of a consent still in use must outlive it: a retention shorter
    than ``max_age`` is a ConfigError at construction."""
    rec = Recorder(
        str(tmp_path / "r.db"), journal_dir=tmp_path / "j", retention=Retention(records_days=30)
    )
    try:
        with pytest.raises(ConfigError) as err:
            make_gate(records=rec)  # max_age: about six months
        assert err.value.field == "records.retention.records_days"
        assert "30 days" in str(err.value)
        make_gate(records=rec, max_age=30 * 86400)  # exactly as long: accepted
    finally:
        rec.close()


def _orphan_journal(journal: Path, n: int) -> Path:
    """A journal that a stopped process left: ``n`` records never committed."""
    journal.mkdir(parents=True)
    orphan = journal / "journal-99999-dead.jsonl"
    orphan.write_text("".join(canonical(pending().to_json()) + "\n" for _ in range(n)))
    return orphan


def _replayed(rec: Recorder, orphan: Path) -> int:
    deadline = time.monotonic() + 20
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not orphan.exists(), "the orphan journal was not replayed"
    return rec.store.count()


def test_a_stopped_processs_journal_is_replayed_at_the_first_request(
    tmp_path: Path, client_for: Callable[[Gate], Client]
) -> None:
    """Records a stopped process left in its journal reach the database when
    the next process serves its first request, even one that records nothing
    (before, they waited for the next consent record, maybe for days)."""
    orphan = _orphan_journal(tmp_path / "j", 3)
    rec = Recorder(str(tmp_path / "records.db"), journal_dir=tmp_path / "j", flush_interval=0.01)
    try:
        call = client_for(make_gate(records=rec))
        assert orphan.exists()  # a gate built does nothing yet
        assert call("GET", "/").status == 200  # a page view: no record of its own
        assert _replayed(rec, orphan) == 3
        assert rec.verify().ok
    finally:
        rec.close()


def test_a_stopped_processs_journal_is_replayed_at_lifespan_start_up(tmp_path: Path) -> None:
    """Under an ASGI server the lifespan start-up is the middleware's first call."""
    orphan = _orphan_journal(tmp_path / "j", 2)
    rec = Recorder(str(tmp_path / "records.db"), journal_dir=tmp_path / "j", flush_interval=0.01)
    sent: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        assert (await receive())["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        mw = AsgiGate(app, gate=make_gate(records=rec))
        asyncio.run(mw({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
        assert sent == [{"type": "lifespan.startup.complete"}]
        assert _replayed(rec, orphan) == 2
    finally:
        rec.close()
