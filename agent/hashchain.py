"""The decision log's hash chain: pure functions, the one place ``ZERO_HASH`` and the entry format are defined.

Why a leaf module: the ledger computes each run's chained hash inside its commit and the decision log re-derives
and verifies the same bytes. Both import this module; neither imports the other, so there is no cycle and no
second copy of the format.

An entry is the canonical JSON of ``{"seq", "run_id", "slot", "asof", "profile", "prev_hash", "record", "hash"}``
where ``hash`` = SHA-256 of the canonical JSON of the same object WITHOUT ``hash`` (so it covers ``prev_hash``);
the first entry's ``prev_hash`` is :data:`ZERO_HASH`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from json.encoder import encode_basestring
from typing import Any

__all__ = [
    "ENTRY_KEYS",
    "ZERO_HASH",
    "chained_entry",
    "chained_hash",
    "entry_hash",
    "entry_json",
    "make_entry",
]

ZERO_HASH = "0" * 64
ENTRY_KEYS = frozenset({"seq", "run_id", "slot", "asof", "profile", "prev_hash", "record", "hash"})


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the entry without its own ``hash`` field."""
    from agent.decision import digest

    return digest({k: v for k, v in entry.items() if k != "hash"})


def make_entry(
    *,
    seq: int,
    run_id: int,
    slot: str,
    asof: dt.date | str,
    profile: str,
    prev_hash: str,
    record: dict[str, Any],
) -> dict[str, Any]:
    """The log record for one run, hash included. Pure: the ledger and the log derive the same bytes."""
    entry: dict[str, Any] = {
        "seq": int(seq),
        "run_id": int(run_id),
        "slot": str(slot),
        "asof": asof.isoformat() if isinstance(asof, dt.date) else str(asof),
        "profile": str(profile),
        "prev_hash": str(prev_hash),
        "record": record,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def _jstr(v: object) -> str:
    """``json.dumps(str(v), ensure_ascii=False)``, without building an encoder per call."""
    return encode_basestring(str(v))


def entry_json(
    *,
    seq: int,
    run_id: int,
    slot: str,
    asof: dt.date | str,
    profile: str,
    prev_hash: str,
    record_json: str,
    hash: str | None = None,
) -> str:
    """The canonical JSON of an entry, assembled around the record's canonical JSON without re-encoding it.

    Byte-identical to `canonical_json(make_entry(...))` (keys in sorted order, no whitespace); it exists because
    a record holds the full covariance and re-walking it several times per run dominated replay time."""
    a = asof.isoformat() if isinstance(asof, dt.date) else str(asof)
    parts = [f'"asof":{_jstr(a)}']
    if hash is not None:
        parts.append(f'"hash":{_jstr(hash)}')
    parts += [
        f'"prev_hash":{_jstr(prev_hash)}',
        f'"profile":{_jstr(profile)}',
        f'"record":{record_json}',
        f'"run_id":{int(run_id)}',
        f'"seq":{int(seq)}',
        f'"slot":{_jstr(slot)}',
    ]
    return "{" + ",".join(parts) + "}"


def chained_entry(
    *, seq: int, run_id: int, slot: str, asof: dt.date | str, profile: str, prev_hash: str, record_json: str
) -> tuple[str, str]:
    """(the entry's JSON line without newline, its hash): the fast form of `make_entry` for a canonical record."""
    kw: dict[str, Any] = {
        "seq": seq,
        "run_id": run_id,
        "slot": slot,
        "asof": asof,
        "profile": profile,
        "prev_hash": prev_hash,
    }
    h = hashlib.sha256(entry_json(**kw, record_json=record_json).encode("utf-8")).hexdigest()
    return entry_json(**kw, record_json=record_json, hash=h), h


def chained_hash(
    *, seq: int, run_id: int, slot: str, asof: dt.date | str, profile: str, prev_hash: str, record_json: str
) -> str:
    """The hash alone of :func:`chained_entry` (what the ledger stores; the line itself is built by the log)."""
    line = entry_json(
        seq=seq, run_id=run_id, slot=slot, asof=asof, profile=profile, prev_hash=prev_hash, record_json=record_json
    )
    return hashlib.sha256(line.encode("utf-8")).hexdigest()
