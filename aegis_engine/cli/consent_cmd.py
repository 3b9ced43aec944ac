"""``aegis consent list|grant PURPOSE|revoke PURPOSE|show PURPOSE``: what may leave this machine.

The same store as the tray app's Settings > Privacy. Every purpose is off until you grant it,
except update checks, which carry no identifier (on by default; ``revoke`` turns them off).
"""

from __future__ import annotations

import argparse
import json
import sys

from ..paths import AegisPaths
from ..privacy import DEFAULTS_SENTENCE, PURPOSES, ConsentState, ConsentStore


def _warn(message: str) -> None:
    print(f"aegis: warning: {message}", file=sys.stderr)


def _store() -> ConsentStore:
    return ConsentStore.for_paths(AegisPaths.default(), warn=_warn)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ids = ", ".join(p.id for p in PURPOSES)
    parser = subparsers.add_parser(
        "consent",
        help="choose what, if anything, may be sent from this machine",
        description="Nothing leaves this machine for a purpose you have not allowed. "
        f"Purposes: {ids}. All are off by default except update-checks, which carry no "
        "identifier.",
    )
    actions = parser.add_subparsers(dest="consent_action", metavar="ACTION", required=True)

    p_list = actions.add_parser("list", help="every purpose and whether it is on")
    p_list.add_argument("--json", action="store_true", help="print a JSON list")
    p_list.set_defaults(run=run_list)

    p_grant = actions.add_parser("grant", help="allow a purpose")
    p_grant.add_argument("purpose", metavar="PURPOSE", help=ids)
    p_grant.set_defaults(run=run_grant)

    p_revoke = actions.add_parser("revoke", help="forbid a purpose")
    p_revoke.add_argument("purpose", metavar="PURPOSE", help=ids)
    p_revoke.set_defaults(run=run_revoke)

    p_show = actions.add_parser("show", help="exactly what a purpose would send")
    p_show.add_argument("purpose", metavar="PURPOSE", help=ids)
    p_show.add_argument("--json", action="store_true", help="print a JSON object")
    p_show.set_defaults(run=run_show)


def _flag(state: ConsentState) -> str:
    text = "on" if state.granted else "off"
    if state.purpose.default and not state.chosen:
        text += "*"
    return text


def run_list(args: argparse.Namespace) -> int:
    states = _store().states()
    if args.json:
        print(json.dumps([s.to_dict() for s in states], indent=2, ensure_ascii=False))
        return 0
    print(DEFAULTS_SENTENCE)
    width = max(len(s.purpose.id) for s in states)
    for s in states:
        print(f"{s.purpose.id:<{width}}  {_flag(s):<4}  {s.purpose.title}")
    if any(s.purpose.default and not s.chosen for s in states):
        print("* on by default: it carries no identifier (turn it off with revoke)")
    print("What each would send: aegis consent show PURPOSE")
    print("Change: aegis consent grant PURPOSE / aegis consent revoke PURPOSE")
    return 0


def _choose(purpose_id: str, granted: bool) -> ConsentState:
    """Record the choice; the purpose's state after it."""
    store = _store()
    store.set(purpose_id, granted)
    return store.state(purpose_id)


def run_grant(args: argparse.Namespace) -> int:
    state = _choose(args.purpose, True)
    where = f" to {state.endpoint}" if state.endpoint else ""
    print(f"Allowed: {state.purpose.title}. It may send{where}: {state.purpose.describe_data()}.")
    if state.endpoint:
        print("If that endpoint changes in settings, you will be asked again.")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    state = _choose(args.purpose, False)
    print(f"Off: {state.purpose.title}. Nothing is sent for it.")
    return 0


def run_show(args: argparse.Namespace) -> int:
    preview = _store().preview(args.purpose)
    if args.json:
        print(json.dumps(preview.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(preview.to_text())
    return 0
