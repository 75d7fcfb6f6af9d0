"""Load a script under docs/ as a module (they are scripts, not a package): one loader for the tests of the
generated documents' rules and renderers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_docs_module(name: str, *, register: bool = False) -> ModuleType:
    """docs/<name>.py as a module; ``register`` puts it in sys.modules (for scripts that import each other)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    if register:
        sys.modules.setdefault(name, mod)
    spec.loader.exec_module(mod)
    return mod
