"""Renamed settings keys: the one table of old -> new names, applied before validation.

A rename must never break a user's file or change a decision: old names are mapped per configuration layer
(so a user file's old name still overrides a profile's new one), reported as deprecated (`Settings.
deprecations`, logged as a `setting_deprecated` warning event), and hashed under their old names in the
strategy digest so that logs written before the rename keep matching their configuration.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ADDED",
    "DEPRECATED",
    "DIGEST_NAMES",
    "REMOVED",
    "RENAMES",
    "drop_removed",
    "migrate_layer",
    "rename_deprecated",
]

# Deprecated keys met while building one Settings (collected by load_settings, logged by the CLI).
DEPRECATED: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("DEPRECATED", default=None)

# section -> {old name: new name}. Add a rename here (and the new field in agent/settings.py), nowhere else.
RENAMES: dict[str, dict[str, str]] = {"risk": {"garch_p": "arch_lags", "garch_q": "garch_lags"}}

# The pre-rename names, so that the strategy digest of an unchanged configuration stays what it was (decision
# logs written before a rename keep matching their configuration in `audit`).
DIGEST_NAMES: dict[str, dict[str, str]] = {
    sec: {new: old for old, new in r.items()} for sec, r in RENAMES.items()
}

# section -> {removed key: the value it always had}. A key removed because nothing ever read it: still accepted
# (reported as deprecated and ignored), and hashed into the strategy digest with that value, so that digests
# written before the removal stay valid.
REMOVED: dict[str, dict[str, Any]] = {"forecast": {"horizon_average": True}}

# section -> {added key: the value that reproduces the behaviour from before it existed}. At that value the key is
# left out of the strategy digest, so every digest written before the key was added stays valid.
ADDED: dict[str, dict[str, Any]] = {"skill": {"gate_sustain": 1}}


def migrate_layer(layer: dict[str, Any]) -> dict[str, Any]:
    """One configuration layer (a profile or a user file) with deprecated keys renamed."""
    out = dict(layer)
    for section, renames in RENAMES.items():
        if isinstance(out.get(section), Mapping):
            out[section] = rename_deprecated(out[section], section, renames)
    for section in REMOVED:
        if isinstance(out.get(section), Mapping):
            out[section] = drop_removed(out[section], section)
    return out


def drop_removed(data: Any, section: str) -> Any:
    """A section's data without the keys that were removed (each reported as deprecated and ignored)."""
    gone = REMOVED.get(section, {})
    if not isinstance(data, Mapping) or not any(k in data for k in gone):
        return data
    out = {k: v for k, v in data.items() if k not in gone}
    found = DEPRECATED.get()
    for k in gone:
        note = f"{section}.{k} had no effect and is ignored: remove it"
        if k in data and found is not None and note not in found:
            found.append(note)
    return out


def rename_deprecated(data: Any, section: str, renames: Mapping[str, str], *, old_wins: bool = False) -> Any:
    """Map old key names to new ones (before validation). Both names in one layer is a configuration error;
    `old_wins` is for the merged settings, where an old name can only come from a layer above the files (the
    environment, keyword arguments) since the file layers are migrated first."""
    if not isinstance(data, Mapping) or not any(old in data for old in renames):
        return data
    out = dict(data)
    for old, new in renames.items():
        if old not in out:
            continue
        if new in out and not old_wins:
            raise ValueError(f"{section}.{old} is the deprecated name of {section}.{new}: set only {new}")
        out[new] = out.pop(old)
        note = f"{section}.{old} is deprecated: use {section}.{new}"
        found = DEPRECATED.get()
        if found is not None and note not in found:
            found.append(note)
    return out
