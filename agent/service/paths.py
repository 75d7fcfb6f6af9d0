"""Where the agent keeps its state: one dataclass, so every job names the same files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.settings import Settings

__all__ = ["StatePaths"]


@dataclass(frozen=True)
class StatePaths:
    """Everything the agent keeps in its state directory."""

    root: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StatePaths:
        return cls(Path(settings.paths.state_dir).expanduser())

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def log(self) -> Path:
        return self.root / "decisions.jsonl"

    @property
    def targets(self) -> Path:
        return self.root / "targets"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def log_file(self) -> Path:
        return self.logs / "agent.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / "agent.lock"

    @property
    def scheduler_db(self) -> Path:
        return self.root / "scheduler.sqlite"
