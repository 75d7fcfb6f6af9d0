"""A webhook notifier: JSON POST with a timeout and bounded retries that never blocks or fails a run.

Why a worker thread with an overall deadline: a receiver that accepts the connection and then stalls, or DNS that
hangs, must not hold a scheduled run; the run waits at most timeout × attempts + backoff, then moves on (the
daemon thread is abandoned). Every failure is returned as data and logged by the caller, never raised.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Delivery", "post_json"]

_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass
class Delivery:
    delivered: bool = False
    attempts: int = 0
    status: int | None = None
    errors: list[str] = field(default_factory=list)


def _backoff(i: int) -> float:
    return min(2.0, 0.25 * 2**i)


def _attempts(url: str, body: bytes, timeout: float, retries: int, out: Delivery) -> None:
    for i in range(retries + 1):
        out.attempts = i + 1
        req = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "rebalance-agent"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                out.status = int(resp.status)
                out.delivered = 200 <= out.status < 300
                return
        except urllib.error.HTTPError as e:
            out.status = int(e.code)
            out.errors.append(f"HTTP {e.code}")
            if e.code not in _RETRY_STATUS:
                return
        except Exception as e:  # timeouts, refused connections, DNS: all retried
            out.errors.append(f"{type(e).__name__}: {e}")
        if i < retries:
            time.sleep(_backoff(i))


def post_json(url: str, payload: Any, *, timeout: float = 5.0, retries: int = 2) -> Delivery:
    """POST payload as JSON; retry on network errors, timeouts, 408/425/429/5xx. Never raises."""
    out = Delivery()
    try:
        body = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    except (TypeError, ValueError) as e:
        out.errors.append(f"payload is not JSON: {e}")
        return out
    worker = threading.Thread(
        target=_attempts, args=(url, body, timeout, retries, out), name="agent-webhook", daemon=True
    )
    worker.start()
    deadline = timeout * (retries + 1) + sum(_backoff(i) for i in range(retries)) + 1.0
    worker.join(deadline)
    if worker.is_alive():
        out.errors.append(f"gave up after {deadline:.1f} s")
    return out
