"""Which stored cells count as finished on a rerun: a cell's own error is final, a lost worker is retried,
a torn record is rerun."""

from __future__ import annotations

from pathlib import Path

from agent.research.runner import _done, _record_path, _store_record


def test_done_semantics(tmp_path: Path) -> None:
    (tmp_path / "cells").mkdir()
    assert not _done(tmp_path, "a")
    _store_record(tmp_path, {"key": "a", "status": "ok"})
    _store_record(tmp_path, {"key": "b", "status": "error", "error": "ConfigError"})
    _store_record(tmp_path, {"key": "c", "status": "error", "error": "KilledWorker", "retry": True})
    _record_path(tmp_path, "d").write_text('{"key": "d", "sta')  # torn
    assert [_done(tmp_path, k) for k in "abcd"] == [True, True, False, False]
