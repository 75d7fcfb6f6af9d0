"""Regenerate docs/CONFIGURATION.md from the settings model and the profiles (see agent/configref.py).

python docs/make_config_reference.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.configref import render  # noqa: E402


def main() -> None:
    out = REPO / "docs" / "CONFIGURATION.md"
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
