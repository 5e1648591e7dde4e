"""Helpers for the store tests."""

from __future__ import annotations

import secrets
import time

from cookiegate.records.model import PendingRecord, new_id_and_salt


def pending(
    consent_id: str | None = None,
    *,
    at_ms: int | None = None,
    event: str = "given",
    ip: str | None = None,
) -> PendingRecord:
    at_ms = int(time.time() * 1000) if at_ms is None else at_ms
    return PendingRecord(
        # a UUIDv7 of at_ms, as the Recorder makes them (verify relies on it)
        record_id=new_id_and_salt(at_ms)[0],
        consent_id=consent_id or secrets.token_urlsafe(12),
        at_ms=at_ms,
        event=event,
        source="banner",
        categories={"performance": True, "marketing": False},
        policy_version="2026-11-01",
        notice_hash="ab" * 32,
        locale="en",
        expires_at=int(time.time()) + 3600,
        ua_family="Firefox",
        personal={"ip_prefix": ip} if ip else None,
    )
