"""The consent-token codec: round trip, tampering, rotation, robustness."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookiegate import ConfigError, TokenError
from cookiegate.token import MAX_TOKEN_SIZE, ConsentCodec

KEYS = ["first-key-0123456789abcdef", "second-key-0123456789abcdef"]

payloads = st.fixed_dictionaries(
    {
        "v": st.just(1),
        "id": st.text(string.ascii_letters + string.digits + "-_", min_size=8, max_size=32),
        "g": st.lists(st.sampled_from(["performance", "marketing", "functional"]), unique=True),
        "p": st.text(min_size=1, max_size=20),
        "t": st.integers(min_value=0, max_value=2**40),
        "m": st.sampled_from(["banner", "preferences", "gpc", "api", "withdraw"]),
    }
)


@given(payloads)
def test_round_trip(payload: dict[str, object]) -> None:
    codec = ConsentCodec(KEYS)
    assert codec.loads(codec.dumps(payload)) == (payload, True)


@settings(max_examples=60)
@given(payloads, st.data())
def test_no_single_byte_mutation_is_accepted(
    payload: dict[str, object], data: st.DataObject
) -> None:
    codec = ConsentCodec(KEYS)
    token = codec.dumps(payload)
    raw = token.encode("ascii")
    pos = data.draw(st.integers(min_value=0, max_value=len(raw) - 1), label="position")
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != raw[pos]))
    mutated = (raw[:pos] + bytes([byte]) + raw[pos + 1 :]).decode("latin-1")
    with pytest.raises(TokenError):
        codec.loads(mutated)


def test_every_single_character_mutation_is_refused() -> None:
    """Exhaustive over the token alphabet for one token (catches base64 spare bits)."""
    codec = ConsentCodec(KEYS)
    token = codec.dumps({"id": "abcdefgh", "g": ["performance"], "p": "1", "t": 1, "m": "api"})
    alphabet = string.ascii_letters + string.digits + "-_.="
    for i, original in enumerate(token):
        for ch in alphabet:
            if ch != original:
                with pytest.raises(TokenError):
                    codec.loads(token[:i] + ch + token[i + 1 :])


def test_rotation_flags_old_key_and_foreign_key_fails() -> None:
    old = ConsentCodec(KEYS[:1])
    rotated = ConsentCodec(KEYS)
    token = old.dumps({"a": 1})
    assert rotated.loads(token) == ({"a": 1}, False)
    assert rotated.loads(rotated.dumps({"a": 1})) == ({"a": 1}, True)
    with pytest.raises(TokenError):
        ConsentCodec(["another-key-0123456789abcdef"]).loads(token)


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises_anything_but_token_error(text: str) -> None:
    codec = ConsentCodec(KEYS)
    with contextlib.suppress(TokenError):
        codec.loads(text)


def test_oversized_and_non_object() -> None:
    codec = ConsentCodec(KEYS)
    with pytest.raises(TokenError):
        codec.loads("a" * (MAX_TOKEN_SIZE + 1))
    with pytest.raises(TokenError, match="object"):
        codec.loads(codec._newest.dumps([1, 2]))


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ([], "secret_keys"),
        ("a-single-string-key-123", "secret_keys"),
        (["short"], "secret_keys[0]"),
    ],
)
def test_bad_keys(keys: object, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ConsentCodec(keys)  # type: ignore[arg-type]
    assert exc.value.field == field


def test_tokens_are_stock_itsdangerous() -> None:
    """The derived-key cache changes nothing on the wire: a stock serializer with the
    same key and salt reads our tokens, and we read its tokens."""
    from itsdangerous import URLSafeSerializer

    from cookiegate.token import SALT

    codec = ConsentCodec(KEYS)
    stock = URLSafeSerializer(KEYS[-1], salt=SALT)
    payload = {"id": "abcdefgh", "g": [], "p": "1", "t": 5, "m": "api"}
    assert stock.loads(codec.dumps(payload)) == payload
    assert codec.loads(stock.dumps(payload)) == (payload, True)


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "abcdefgh", "g": [], "p": "1", "t": 5, "m": "api"},
        {"v": 1, "id": "x" * 16, "g": ["marketing", "performance"], "p": "2026-11-01",
         "t": 1790000000, "m": "banner"},
        {"v": 1, "id": "aaaaaaaaaaaaaaaa", "g": ["a" * 40] * 5, "p": "é", "t": 1, "m": "api"},
        {"v": 1, "id": "b" * 16, "g": [f"category_{i}" for i in range(30)], "p": "2", "t": 1,
         "m": "api"},
    ],
)  # fmt: skip
def test_dumps_is_the_stock_format(payload: dict[str, object]) -> None:
    """Stock itsdangerous reads every token; from COMPRESS_FROM bytes of JSON on
    (where zlib is tried) the token is byte for byte the stock serializer's."""
    from itsdangerous import URLSafeSerializer

    from cookiegate.token import COMPRESS_FROM, SALT, _CompactJSON

    stock = URLSafeSerializer(KEYS[-1], salt=SALT, serializer=_CompactJSON)  # stock Signer
    token = ConsentCodec(KEYS).dumps(payload)
    assert stock.loads(token) == payload
    if len(_CompactJSON.dumps(payload).encode()) >= COMPRESS_FROM:
        assert token == stock.dumps(payload)
        assert token.startswith(".")  # compressed
    else:
        assert not token.startswith(".")
