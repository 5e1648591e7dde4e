"""Visitors' rights through both adapters: ``GET /_cookiegate/my-data`` and the
``destroyed`` counts of a withdrawal, with a Recorder on a SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cookiegate import Gate
from cookiegate.errors import ConfigError
from cookiegate.records import Recorder

from .conftest import Client, make_gate

JSON = ("content-type", "application/json")
FORM = ("content-type", "application/x-www-form-urlencoded")
SAME = ("sec-fetch-site", "same-origin")
UA = ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")


class Telemetry:
    """A stand-in for the telemetry module: 3 events held per visitor."""

    def __init__(self) -> None:
        self.held: dict[str, int] = {}

    def count_for(self, consent_id: str) -> int:
        return self.held.setdefault(consent_id, 3)

    def erase(self, consent_id: str) -> int:
        n = self.held.get(consent_id, 3)
        self.held[consent_id] = 0
        return n

    def purge(self, before: float) -> int:
        return 0


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = Recorder(
        str(tmp_path / "records.db"),
        journal_dir=tmp_path / "journal",
        telemetry=Telemetry(),
        flush_interval=0.01,
        ip="truncate",
    )
    yield rec
    rec.close()


def test_my_data_and_withdraw_counts(
    recorder: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    call = client_for(make_gate(records=recorder))
    res = call(
        "POST",
        "/_cookiegate/consent",
        [JSON, SAME, UA, ("accept-language", "de-DE,de;q=0.9")],
        b'{"action":"accept_all"}',
    )
    assert res.status == 200
    token = res.cookie_value("cookiegate")
    cookie = ("cookie", f"cookiegate={token}; _ga=GA1.1.1")
    cid = res.json()["consent_id"]

    mine = call("GET", "/_cookiegate/my-data", [cookie])
    assert mine.status == 200
    assert mine.header("content-disposition") == 'attachment; filename="cookiegate-my-data.json"'
    assert mine.header("cache-control") == "no-store"
    doc = mine.json()
    assert doc["consent"]["consent_id"] == cid
    assert doc["telemetry"] == 3
    assert (doc["complete"], doc["pending"]) == (True, 0)  # nothing left out
    [first] = doc["records"]
    assert (first["event"], first["source"], first["locale"]) == ("given", "api", "de")
    assert first["ua_family"] == "Firefox"
    assert first["personal"] == {"ip_prefix": "127.0.0.0/24"}
    assert doc["receipt"]["consentReceiptID"] == first["record_id"]

    gone = call("POST", "/_cookiegate/withdraw", [JSON, SAME, cookie], b"{}")
    assert gone.status == 200
    assert gone.json()["destroyed"] == {"telemetry": 3, "cookies": 1}

    after = call("GET", "/_cookiegate/my-data", [cookie]).json()
    assert [r["event"] for r in after["records"]] == ["given", "withdrawn"]
    assert after["records"][1]["prev_record_id"] == first["record_id"]
    assert after["telemetry"] == 0

    page = call("POST", "/_cookiegate/withdraw", [FORM, SAME, cookie], b"next=/shop")
    assert page.status == 303
    assert b"Destroyed: 0 telemetry event(s); 1 cookie(s) expired." in page.body
    assert recorder.flush(10)
    assert recorder.store.count() == 3
    assert recorder.verify().ok


def test_reconsent_after_a_policy_change(
    recorder: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    gate = make_gate(records=recorder)
    stale = gate.make_token(["performance"], consent_id="stale-visitor-1", policy_version="2020")
    call = client_for(gate)
    res = call(
        "POST", "/_cookiegate/consent", [FORM, SAME, ("cookie", f"cookiegate={stale}")],
        b"action=reject_all",
    )  # fmt: skip
    assert res.status == 303
    assert recorder.flush(10)
    [rec] = recorder.store.history("stale-visitor-1")
    assert (rec["event"], rec["source"]) == ("reconsent", "banner")
    assert rec["categories"] == dict.fromkeys(gate.policy.optional, False)
    assert rec["notice_hash"] and len(rec["notice_hash"]) == 64


def test_my_data_without_records(client_for: Callable[[Gate], Client]) -> None:
    call = client_for(make_gate())
    doc = call("GET", "/_cookiegate/my-data").json()
    assert doc["recording"] is False
    assert doc["records"] == []
    assert (doc["complete"], doc["pending"]) == (True, 0)  # the same shape as with records
    assert doc["consent"]["decided"] is False
    assert call("POST", "/_cookiegate/my-data", [SAME]).status == 405
    gone = call("POST", "/_cookiegate/withdraw", [JSON, SAME], b"{}")
    assert gone.json()["destroyed"] == {"telemetry": 0, "cookies": 0}


def test_a_failing_recorder_never_costs_the_choice(
    recorder: Recorder, client_for: Callable[[Gate], Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(recorder, "consent_changed", boom)
    call = client_for(make_gate(records=recorder))
    res = call("POST", "/_cookiegate/consent", [JSON, SAME], b'{"action":"accept_all"}')
    assert res.status == 200
    assert res.cookie_value("cookiegate")


def test_records_option_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        make_gate(records="sqlite:///x.db")
    assert err.value.field == "records"


GPC = ("sec-gpc", "1")


def test_gpc_refusal_is_recorded_once_per_session_without_an_identifier(
    recorder: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    gate = make_gate(records=recorder)
    call = client_for(gate)
    first = call("GET", "/page", [GPC, UA])
    assert first.status == 200
    # no consent cookie (no identifier), only the session flag holding "1"
    assert first.cookie_value("cookiegate") is None
    flag = [c for c in first.set_cookies() if c.startswith("cookiegate_gpc=")]
    assert flag == ["cookiegate_gpc=1; Path=/; HttpOnly; SameSite=Lax"]
    again = call("GET", "/page", [GPC, ("cookie", "cookiegate_gpc=1")])
    assert "cookiegate_gpc" not in again.set_cookie_names()
    # not a page, not GPC, or an explicit choice: nothing recorded
    assert "cookiegate_gpc" not in call("GET", "/plain", [GPC]).set_cookie_names()
    assert "cookiegate_gpc" not in call("GET", "/page").set_cookie_names()
    token = gate.make_token(["performance"], method="banner", consent_id="chosen-visitor-1")
    chose = call("GET", "/page", [GPC, ("cookie", f"cookiegate={token}")])
    assert "cookiegate_gpc" not in chose.set_cookie_names()
    assert recorder.flush(10)
    assert recorder.store.count() == 1
    [row] = list(recorder.store.iter_rows())
    [rec] = recorder.store.history(str(row["consent_id"]))
    assert (rec["event"], rec["source"]) == ("gpc_refusal", "gpc")
    assert rec["consent_id"].startswith("gpc-")
    assert rec["categories"] == dict.fromkeys(gate.policy.optional, False)
    assert rec["ua_family"] == "Firefox"
    assert recorder.receipt(rec)["event"]["type"] == "signal"


def test_gpc_refusal_of_a_stale_consent_keeps_its_id(
    recorder: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    gate = make_gate(records=recorder)
    stale = gate.make_token(["performance"], consent_id="stale-visitor-2", policy_version="2020")
    res = client_for(gate)("GET", "/page", [GPC, ("cookie", f"cookiegate={stale}")])
    assert "cookiegate_gpc" in res.set_cookie_names()
    assert recorder.flush(10)
    [rec] = recorder.store.history("stale-visitor-2")
    assert rec["event"] == "gpc_refusal"


def test_gpc_flag_cookie_is_declared_with_records(recorder: Recorder) -> None:
    names = [r.name for r in make_gate(records=recorder).own_cookie_rules()]
    assert "cookiegate_gpc" in names
    assert "cookiegate_gpc" not in [r.name for r in make_gate().own_cookie_rules()]


def test_no_js_withdrawal_lands_on_a_page_saying_what_was_destroyed(
    recorder: Recorder, client_for: Callable[[Gate], Client]
) -> None:
    gate = make_gate(records=recorder)
    call = client_for(gate)
    token = gate.make_token(["performance"], method="banner", consent_id="no-js-visitor-1")
    cookie = ("cookie", f"cookiegate={token}; _ga=GA1.1.1; ab_variant=B")
    gone = call("POST", "/_cookiegate/withdraw", [FORM, SAME, cookie], b"next=/shop")
    assert gone.status == 303
    location = gone.header("location") or ""
    assert location.startswith("/_cookiegate/preferences?next=/shop&withdrawn=")
    # the browser follows the redirect with the consent cookie it was just given
    after = [("cookie", f"cookiegate={gone.cookie_value('cookiegate')}")]
    page = call("GET", location, after)
    assert page.status == 200
    assert (
        b'<p class="cg-status" role="status">Your consent was withdrawn. Destroyed: '
        b"3 telemetry records; 2 cookies expired.</p>"
    ) in page.body
    assert b'href="/shop"' in page.body  # back to where the visitor was
    german = call("GET", location + "&lang=de", after).body.decode()
    assert "Gelöscht: 3 Telemetrie-Einträge; 2 Cookies abgelaufen." in german
    # the notice is the withdrawing visitor's only: another visitor (or one with
    # no consent cookie) who opens the same link is told nothing
    other = gate.make_token(["performance"], method="banner", consent_id="someone-else-1")
    for headers in ([("cookie", f"cookiegate={other}")], []):
        body = call("GET", location, headers).body
        assert b"Destroyed:" not in body and b"consent was withdrawn" not in body
    # a forged or tampered flash shows nothing
    flash = location.rsplit("=", 1)[1]
    for bad in ("WzEwMDAsMF0.x.y", flash[:-2] + "xx"):
        forged = call("GET", f"/_cookiegate/preferences?next=/shop&withdrawn={bad}")
        assert forged.status == 200
        assert b"Destroyed:" not in forged.body


def test_flash_of_destroyed_counts_is_short_lived(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    gate = make_gate(records=recorder)
    token = gate._flash.dumps([1, 2])
    assert gate._flash.loads(token, max_age=600) == [1, 2]
    later = time.time() + 601
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert gate._flash.loads(token, max_age=600) is None
