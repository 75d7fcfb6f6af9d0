"""`agent config show`: the effective settings after every layer, secrets redacted."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import settings_from_args

__all__ = ["register"]


def register(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "config",
        parents=[parent],
        help="show the effective configuration",
        description="Inspect settings. Precedence: defaults < profile < --config TOML < AGENT_* environment "
        "(nested with __, e.g. AGENT_RISK__METHOD=ewma) < command-line flags.",
    )
    csub = p.add_subparsers(dest="config_cmd", metavar="COMMAND", required=True)
    show = csub.add_parser(
        "show",
        parents=[parent],
        help="print the effective settings as JSON (secrets redacted)",
        description="Print the effective settings as JSON, secrets redacted.",
    )
    show.add_argument("--section", metavar="NAME", help="only this section (e.g. risk, allocation)")
    show.set_defaults(handler=_show)
    prof = csub.add_parser("profiles", parents=[parent], help="list the built-in strategy profiles")
    prof.set_defaults(handler=_profiles)


def _show(args: argparse.Namespace) -> int:
    from agent.errors import UsageError

    s = settings_from_args(args)
    data = s.redacted()
    if args.section:
        if args.section not in data:
            raise UsageError(f"no settings section {args.section!r}", hint=f"sections: {', '.join(data)}")
        data = {args.section: data[args.section]}
    print(json.dumps(data, indent=2, sort_keys=False))
    return 0


def _profiles(args: argparse.Namespace) -> int:
    import tomllib

    from agent.settings import available_profiles, profile_path

    for name in available_profiles():
        with profile_path(name).open("rb") as f:
            desc = tomllib.load(f).get("description", "")
        print(f"{name:20s} {desc}")
    return 0
