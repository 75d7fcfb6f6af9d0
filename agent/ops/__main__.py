"""`python -m agent.ops notify --unit NAME`: the systemd OnFailure= notifier (see deploy/systemd).

Reads the same configuration as the agent (AGENT_CONFIG, AGENT_* environment) and POSTs one `run_failure`
event to ops.webhook_url. Exit 0 when delivered (or no webhook is configured: nothing to do), 1 when not.
"""

from __future__ import annotations

import argparse
import sys

from agent.errors import AgentError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m agent.ops", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("notify", help="send one event to ops.webhook_url")
    n.add_argument("--unit", default="", help="the systemd unit that failed (%%i of the notifier unit)")
    n.add_argument(
        "--event",
        default="run_failure",
        choices=["run_failure", "stop_transition", "stale_data", "model_change"],
    )
    n.add_argument("--message", default="", help="text of the event (default: names the failed unit)")
    n.add_argument("--config", help="agent TOML (default: $AGENT_CONFIG)")
    args = p.parse_args(argv)
    from agent.ops import notify
    from agent.settings import load_settings

    try:
        settings = load_settings(args.config)
    except AgentError as e:
        print(f"agent.ops: error: {e.one_line()}", file=sys.stderr)
        return 2
    if settings.ops.webhook_url is None:
        print("agent.ops: no ops.webhook_url configured: nothing sent")
        return 0
    msg = args.message or f"systemd unit {args.unit or '(unknown)'} failed; see journalctl -u {args.unit}"
    sent = notify(settings, args.event, msg, {"unit": args.unit})
    failed = [d for d in sent if not d.delivered]
    for d in failed:
        print(
            f"agent.ops: webhook not delivered after {d.attempts} attempt(s): {'; '.join(d.errors)}",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
