"""Consent records: the plain record, its canonical JSON and the SHA-256 chain.

Stdlib only. A record is stored as three parts:

``body``
    canonical JSON of every non-personal field (ids, time, event, source,
    categories, policy version, notice hash, locale, expiry, user-agent family).
``personal``
    canonical JSON of the erasable part (a random salt plus the optional
    truncated or keyed-hash IP). May be replaced by ``NULL`` (a tombstone) when a
    visitor's data is erased.
``personal_digest``
    SHA-256 of ``personal``. It stays when ``personal`` is erased, so the chain
    still verifies.

The chain hash of record *n* is ``SHA-256(seq "\\n" prev_hash "\\n"
personal_digest "\\n" body)``, where ``prev_hash`` is the hash of record *n-1*
(or of the purge anchor, or 64 zeros at the start). Editing, deleting or
reordering any record therefore breaks the chain at that record.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from cookiegate.entropy import random_bytes

SCHEMA_VERSION = 1
GENESIS = "0" * 64

#: What happened. ``given``/``refused``: a first choice; ``updated``: a change of
#: an existing choice; ``withdrawn``; ``gpc_refusal``: refusal derived from
#: ``Sec-GPC: 1``; ``reconsent``: a new choice after a policy change or expiry.
EVENTS = ("given", "refused", "updated", "withdrawn", "gpc_refusal", "reconsent")
IP_MODES = ("none", "truncate", "hash")

#: Body fields, in the order they are documented (the JSON is sorted anyway).
BODY_FIELDS = (
    "record_id",
    "consent_id",
    "prev_record_id",
    "at_ms",
    "event",
    "source",
    "categories",
    "policy_version",
    "notice_hash",
    "locale",
    "expires_at",
    "ua_family",
    "schema",
)


_canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept (RFC 8785-like
    for the value types used here: str, int, bool, None, lists, objects)."""
    return _canonical(obj)


def _j(value: Any) -> str:
    """``canonical(value)`` for one scalar, fast for the types records hold
    (``str``, ``int``, ``None``); anything else goes through :func:`canonical`."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        enc: str = encode_basestring(value)
        return enc
    if kind is int:
        return int.__repr__(value)
    return canonical(value)


def _flags(categories: Mapping[str, Any]) -> str:
    """``canonical(categories)`` for a ``{str: bool}`` mapping."""
    if not all(type(k) is str and type(v) is bool for k, v in categories.items()):
        return canonical(categories)
    return (
        "{"
        + ",".join(
            f"{encode_basestring(k)}:{'true' if categories[k] else 'false'}"
            for k in sorted(categories)
        )
        + "}"
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_hash(seq: int, prev_hash: str, personal_digest: str, body: str) -> str:
    """The hash of one record in the chain."""
    return sha256_hex(f"{seq}\n{prev_hash}\n{personal_digest}\n{body}")


def new_salt() -> str:
    """128 random bits, hex (the salt of a record's personal part)."""
    return random_bytes(16).hex()


def new_id_and_salt(at_ms: int | None = None) -> tuple[str, str]:
    """A new record id (UUIDv7 of ``at_ms``, default now) and salt from one
    draw of the entropy buffer."""
    raw = random_bytes(32)
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return _uuid7(ms, raw[:16]), raw[16:].hex()


def new_record_id() -> str:
    """A new UUIDv7 string (RFC 9562: the time in ms, then random bits)."""
    return _uuid7(time.time_ns() // 1_000_000, random_bytes(16))


def _uuid7(ms: int, random16: bytes) -> str:
    """UUIDv7 of ``ms`` with 74 random bits from ``random16``.

    Time-ordered on purpose: ids made later sort later, so the ``UNIQUE`` index
    on ``record_id`` grows at its end. A UUID4 put every record on a random
    index page (one more dirty page, written to the WAL, per record: about 8 µs
    per record on SQLite at 80k records, and more as the table grows). The id
    tells when the record was made, which the record says anyway (``at_ms``)."""
    if not 0 <= ms < 1 << 48:
        raise ValueError("a UUIDv7 time must fit in 48 bits")
    raw = bytearray(ms.to_bytes(6, "big") + random16[6:])
    raw[6] = (raw[6] & 0x0F) | 0x70  # version 7
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def truncate_ip(ip: str) -> str | None:
    """An IPv4 address cut to its /24, an IPv6 one to its /48; ``None`` if
    ``ip`` is not an address."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def hash_ip(ip: str, key: bytes) -> str | None:
    """A keyed hash (HMAC-SHA-256, hex) of the address; ``None`` if not one."""
    import hmac

    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    return hmac.new(key, str(addr).encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record encoded once, in the writer thread: its journal line, the body
    around ``prev_record_id`` (``body = head + canonical(prev) + tail``, filled in
    the append transaction), the personal part and its digest."""

    record_id: str
    consent_id: str
    at_ms: int
    head: str
    tail: str
    personal: str
    digest: str
    #: the canonical JSON journal line (``canonical(to_json())``), with ``\n``
    line: bytes

    def body(self, prev_record_id: str | None) -> str:
        return self.head + _j(prev_record_id) + self.tail


@dataclass(slots=True)
class PendingRecord:
    """A record before it is chained: everything but ``seq``, ``prev_record_id``
    and the hashes, which the store fills inside the append transaction."""

    record_id: str
    consent_id: str
    at_ms: int
    event: str
    source: str
    categories: dict[str, bool]
    policy_version: str | None
    notice_hash: str | None
    locale: str | None
    expires_at: int | None
    ua_family: str | None
    #: the erasable part (without the salt); ``None`` means nothing personal
    personal: dict[str, Any] | None = None
    salt: str = field(default_factory=lambda: secrets.token_hex(16))

    def _chained(self) -> dict[str, Any]:
        """The fields both the journal line and the hashed body hold."""
        return {
            "record_id": self.record_id,
            "consent_id": self.consent_id,
            "at_ms": self.at_ms,
            "event": self.event,
            "source": self.source,
            "categories": self.categories,
            "policy_version": self.policy_version,
            "notice_hash": self.notice_hash,
            "locale": self.locale,
            "expires_at": self.expires_at,
            "ua_family": self.ua_family,
        }

    def to_json(self) -> dict[str, Any]:
        """The journal line of this record."""
        return {"k": "r", **self._chained(), "personal": self.personal, "salt": self.salt}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PendingRecord:
        return cls(
            record_id=str(d["record_id"]),
            consent_id=str(d["consent_id"]),
            at_ms=int(d["at_ms"]),
            event=str(d["event"]),
            source=str(d["source"]),
            categories={str(k): bool(v) for k, v in dict(d["categories"]).items()},
            policy_version=d.get("policy_version"),
            notice_hash=d.get("notice_hash"),
            locale=d.get("locale"),
            expires_at=d.get("expires_at"),
            ua_family=d.get("ua_family"),
            personal=d.get("personal"),
            salt=str(d.get("salt") or secrets.token_hex(16)),
        )

    def body(self, prev_record_id: str | None) -> str:
        # canonical() sorts keys: the bytes do not depend on the order here
        return canonical(
            {**self._chained(), "prev_record_id": prev_record_id, "schema": SCHEMA_VERSION}
        )

    def personal_json(self) -> str:
        if not self.personal:
            return '{"salt":' + _j(self.salt) + "}"
        return canonical({"salt": self.salt, **self.personal})

    def encode(self, categories_json: str | None = None) -> Encoded:
        """Every serialisation of this record, each field encoded once (the same
        text :func:`canonical` gives; ``tests/store/test_store.py`` checks it).
        ``categories_json``: ``canonical(self.categories)``, if the caller has it."""
        at, rid, cid = _j(self.at_ms), _j(self.record_id), _j(self.consent_id)
        cats = _flags(self.categories) if categories_json is None else categories_json
        event, exp = _j(self.event), _j(self.expires_at)
        loc, notice, pv = _j(self.locale), _j(self.notice_hash), _j(self.policy_version)
        src, ua = _j(self.source), _j(self.ua_family)
        personal = self.personal_json()
        line = (
            f'{{"at_ms":{at},"categories":{cats},"consent_id":{cid},"event":{event},'
            f'"expires_at":{exp},"k":"r","locale":{loc},"notice_hash":{notice},'
            f'"personal":{"null" if self.personal is None else canonical(self.personal)},'
            f'"policy_version":{pv},"record_id":{rid},"salt":{_j(self.salt)},'
            f'"source":{src},"ua_family":{ua}}}\n'
        )
        return Encoded(
            record_id=self.record_id,
            consent_id=self.consent_id,
            at_ms=self.at_ms,
            head=f'{{"at_ms":{at},"categories":{cats},"consent_id":{cid},"event":{event},'
            f'"expires_at":{exp},"locale":{loc},"notice_hash":{notice},'
            f'"policy_version":{pv},"prev_record_id":',
            tail=f',"record_id":{rid},"schema":{SCHEMA_VERSION},"source":{src},"ua_family":{ua}}}',
            personal=personal,
            digest=hashlib.sha256(personal.encode("utf-8")).hexdigest(),
            line=line.encode("utf-8"),
        )


def record_view(body: str, personal: str | None) -> dict[str, Any]:
    """A stored record as a plain dict (for exports and ``my-data``)."""
    doc: dict[str, Any] = json.loads(body)
    doc.pop("schema", None)
    if personal is None:
        doc["personal"] = "erased"
    else:
        extra = json.loads(personal)
        extra.pop("salt", None)
        doc["personal"] = extra or None
    return doc


def receipt(
    record: Mapping[str, Any],
    *,
    controller: Mapping[str, str] | None = None,
    jurisdiction: str = "",
    policy_url: str = "",
    service: str = "website",
) -> dict[str, Any]:
    """A Kantara Consent Receipt (``KI-CR-v1.1.0``) for one record, with the
    ISO/IEC TS 27560 event fields alongside (``event``: time, state, validity)."""
    ctrl = dict(controller or {})
    purposes = [
        {
            "purpose": name,
            "purposeCategory": [name],
            "consentType": "EXPLICIT" if record.get("source") != "gpc" else "SIGNAL (Sec-GPC)",
            "piiCategory": ["online identifiers (cookies)"],
            "primaryPurpose": False,
            "termination": f"until {record.get('expires_at')} (epoch seconds) or withdrawal",
            "thirdPartyDisclosure": False,
            "granted": bool(granted),
        }
        for name, granted in sorted(dict(record.get("categories") or {}).items())
    ]
    at_ms = int(record.get("at_ms") or 0)
    state = {
        "given": "given",
        "updated": "given",
        "reconsent": "given",
        "refused": "refused",
        "gpc_refusal": "refused",
        "withdrawn": "withdrawn",
    }.get(str(record.get("event")), "given")
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": jurisdiction,
        "consentTimestamp": at_ms // 1000,
        "collectionMethod": f"cookie banner ({record.get('source')})",
        "consentReceiptID": record.get("record_id"),
        "language": record.get("locale") or "",
        "piiPrincipalId": record.get("consent_id"),
        "piiControllers": [
            {
                "piiController": ctrl.get("name", ""),
                "contact": ctrl.get("contact", ""),
                "address": ctrl.get("address", ""),
                "email": ctrl.get("email", ""),
                "phone": ctrl.get("phone", ""),
                "piiControllerUrl": ctrl.get("url", ""),
            }
        ],
        "policyUrl": policy_url,
        "services": [{"service": service, "purposes": purposes}],
        "sensitive": False,
        "spiCat": [],
        "policyVersion": record.get("policy_version"),
        "noticeHash": record.get("notice_hash"),
        "event": {
            "time": at_ms // 1000,
            "state": state,
            "type": "explicit" if record.get("source") != "gpc" else "signal",
            "validityUntil": record.get("expires_at"),
        },
    }
