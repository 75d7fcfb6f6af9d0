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
    "ORDER_BEFORE_ENTRY_EXIT_MOVE",
    "REMOVED",
    "RENAMES",
    "digest_overlay_order",
    "drop_neutral_added",
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

# The overlay order before entry/exit moved ahead of the exposure overlays. Where entry/exit is off its place in
# the order decides nothing, so the default order hashes as this one and those digests stay valid
# (`digest_overlay_order`); with entry/exit on, decisions change and so does the digest.
ORDER_BEFORE_ENTRY_EXIT_MOVE: tuple[str, ...] = (
    "max_weight",
    "group_caps",
    "drawdown_stop",
    "var_limit",
    "vol_target",
    "turnover_cap",
    "entry_exit",
    "no_trade_band",
    "min_trade",
)


# (section, subsection...) -> {added key: its neutral value}. A key added with a default that decides exactly as
# before is hashed only when set to something else, so digests written before it existed stay valid.
ADDED: dict[tuple[str, ...], dict[str, Any]] = {
    ("overlays", "var_limit"): {"release": 0.0},
    ("skill",): {"gate_sustain": 1},
}


def drop_neutral_added(plain: dict[str, Any]) -> dict[str, Any]:
    """The digest's plain settings without the added keys that hold their neutral value (see ADDED)."""
    out = dict(plain)
    for path, keys in ADDED.items():
        parents = [out]
        for part in path:  # copy the chain down to the section holding the keys
            child = parents[-1].get(part)
            if not isinstance(child, Mapping):
                break
            parents[-1][part] = dict(child)
            parents.append(parents[-1][part])
        else:
            section = parents[-1]
            for k, neutral in keys.items():
                if k in section and section[k] == neutral:
                    del section[k]
    return out


def digest_overlay_order(overlays: dict[str, Any], default_order: tuple[str, ...]) -> dict[str, Any]:
    """The overlays section as the strategy digest hashes it (see ORDER_BEFORE_ENTRY_EXIT_MOVE)."""
    entry_exit_on = overlays.get("entry_threshold", 0) > 0 or overlays.get("exit_threshold", 0) > 0
    if entry_exit_on or tuple(overlays.get("order", ())) != tuple(default_order):
        return overlays
    return {**overlays, "order": list(ORDER_BEFORE_ENTRY_EXIT_MOVE)}


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
