"""Domain errors. The CLI maps each to a one-line message and an exit code (DESIGN.md).

Exit codes: 0 ok, 1 run failed (recorded), 2 usage or configuration error, 3 data error.
User errors never show a traceback; anything else is a bug and does.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DATA",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "AgentError",
    "ConfigError",
    "DataError",
    "LedgerError",
    "LedgerUnusableError",
    "LockError",
    "ModelError",
    "OfflineError",
    "RunFailedError",
    "StateError",
    "UsageError",
    "ValidationFailedError",
    "describe",
]

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_CONFIG = 2
EXIT_DATA = 3


class AgentError(Exception):
    """Base class: a problem the user can act on, reported in one line."""

    exit_code: int = EXIT_RUN_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" ({' '.join(self.hint.split())})"
        return text


class UsageError(AgentError):
    """Bad command-line usage: a missing argument, a window that makes no sense, an unknown profile."""

    exit_code = EXIT_CONFIG


class ConfigError(AgentError):
    """A bad settings value or an unknown key."""

    exit_code = EXIT_CONFIG


class DataError(AgentError):
    """Prices that are missing, malformed or fail validation."""

    exit_code = EXIT_DATA


class ValidationFailedError(DataError):
    """Validation found problems and the policy says fail."""


class OfflineError(DataError):
    """No network and no cached prices: nothing to decide on."""


class ModelError(AgentError):
    """A model file that is missing, corrupt, or does not match the live inputs."""

    exit_code = EXIT_DATA


class LedgerError(AgentError):
    """The ledger or decision log is inconsistent or cannot be written."""

    exit_code = EXIT_RUN_FAILED


class LedgerUnusableError(LedgerError):
    """The ledger file itself cannot be used (corrupt pages, a foreign SQLite file, another schema version): a
    bad state directory, reported before anything is read or written (exit 3, like the other state problems)."""

    exit_code = EXIT_DATA


class LockError(AgentError):
    """Another agent process holds the state directory."""

    exit_code = EXIT_RUN_FAILED


class RunFailedError(AgentError):
    """A run failed; the failure is recorded."""

    exit_code = EXIT_RUN_FAILED


class StateError(AgentError):
    """The state or data directory, or the filesystem under it, cannot be used (a regular file where a
    directory belongs, read-only, full): an environment problem, found before anything is read or committed."""

    exit_code = EXIT_DATA


def describe(exc: BaseException) -> str:
    """One line for any exception, for records and logs: an AgentError's own line, else `Type: message`.

    The decision pipeline turns unexpected exceptions into recorded fallbacks; the type name keeps a bug
    (a KeyError, an onnxruntime failure) distinguishable from a user error in the record."""
    if isinstance(exc, AgentError):
        return exc.one_line()
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
