"""Page sizes and page tokens of the list and search RPCs.

A token is the offset of the next page plus a short hash of the query it belongs to, so a token
passed with a different filter, order or scope is refused instead of silently paging through
another result. ``query_fingerprint`` is any text that identifies the query; callers build it
from every request field that shapes the result (for example the JSON of filter, order_by,
experiment ids and view type).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable

from tuning_common.errors import InvalidArgument

# Generous for {"offset": <int64>, "query": <16 hex>} in base64; longer input is not decoded at all.
MAX_TOKEN_CHARS = 200
_MALFORMED = "malformed; pass next_page_token from the previous response unchanged"


def _query_hash(query_fingerprint: str) -> str:
    return hashlib.sha256(query_fingerprint.encode()).hexdigest()[:16]


def page_size(value: int, default: int, limit: int, field: str = "page_size") -> int:
    if value < 0 or value > limit:
        raise InvalidArgument(field, f"must be between 0 (the default, {default}) and {limit}, got {value}")
    return value or default


def fingerprint(*parts) -> str:
    """A query fingerprint from the request fields that shape the result (JSON-serialisable)."""
    return json.dumps(parts, separators=(",", ":"), sort_keys=True)


def _encode(position, query_fingerprint: str) -> str:
    payload = json.dumps({"offset": position, "query": _query_hash(query_fingerprint)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode()


def _decode(token: str, query_fingerprint: str, field: str, valid: Callable[[object], bool]):
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidArgument(field, _MALFORMED)
    try:
        payload = json.loads(base64.b64decode(token, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidArgument(field, _MALFORMED) from None
    if not isinstance(payload, dict) or set(payload) != {"offset", "query"}:
        raise InvalidArgument(field, _MALFORMED)
    if not valid(payload["offset"]):
        raise InvalidArgument(field, f"{_MALFORMED} (bad position)")
    if payload["query"] != _query_hash(query_fingerprint):
        raise InvalidArgument(field, "belongs to a different query (filter, order or scope changed); "
                                     "start again without a page token")
    return payload["offset"]


def encode_page_token(offset: int, query_fingerprint: str) -> str:
    if offset < 0:
        raise ValueError(f"a page offset is 0 or more, got {offset}")
    return _encode(offset, query_fingerprint)


def decode_page_token(token: str, query_fingerprint: str, field: str = "page_token") -> int:
    """The offset ``token`` resumes at: 0 for an empty token (the first page)."""
    if not token:
        return 0
    return _decode(token, query_fingerprint, field, lambda offset: type(offset) is int and offset >= 0)


def encode_keyset_token(last: list, query_fingerprint: str) -> str:
    """A token resuming after the row whose sort key was ``last`` (for long, append-only series,
    where an offset would make every page rescan the ones before it)."""
    return _encode(list(last), query_fingerprint)


def decode_keyset_token(token: str, query_fingerprint: str, types: tuple[type, ...],
                        field: str = "page_token") -> tuple:
    def valid(last) -> bool:
        return isinstance(last, list) and len(last) == len(types) and all(
            isinstance(v, t) and not (t is int and isinstance(v, bool)) for v, t in zip(last, types))

    return tuple(_decode(token, query_fingerprint, field, valid))
