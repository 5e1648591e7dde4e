"""Helpers for the store tests."""

from __future__ import annotations

import secrets
import time

from cookiegate.records.model import PendingRecord, new_record_id


def pending(
    consent_id: str | None = None,
    *,
    at_ms: int | None = None,
    event: str = "given",
    ip: str | None = None,
) -> PendingRecord:
    return PendingRecord(
        record_id=new_record_id(),
        consent_id=consent_id or secrets.token_urlsafe(12),
        at_ms=int(time.time() * 1000) if at_ms is None else at_ms,
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
