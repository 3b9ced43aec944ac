"""``aegis privacy preview|sent|send|submit``: what would leave this machine, what did, and the
explicit ways to send.

- ``preview [--json]``: per purpose, exactly what would be sent next (the request line,
  headers and body, byte for byte before compression) and where to.
- ``sent [--json]``: the local log of everything that was sent.
- ``send [PURPOSE...]``: send queued usage statistics and crash reports now.
- ``submit FILE... --yes``: upload detected files for analysis (each one confirmed by
  ``--yes``; never automatic).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import AegisError
from ..paths import AegisPaths


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "privacy",
        help="see what would be sent and what was sent; send or submit explicitly",
        description="Nothing leaves this machine for a purpose you have not allowed "
        "(aegis consent). These commands show exactly what would be sent next and what was "
        "sent, and send on request.",
    )
    actions = parser.add_subparsers(dest="privacy_action", metavar="ACTION", required=True)
    p = actions.add_parser("preview", help="exactly what would be sent next, per purpose")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_preview)
    p = actions.add_parser("sent", help="the log of everything that was sent")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_sent)
    p = actions.add_parser("send", help="send queued usage statistics and crash reports now")
    p.add_argument(
        "purposes", nargs="*", metavar="PURPOSE", help="usage-stats, crash-reports (default both)"
    )
    p.set_defaults(run=run_send)
    p = actions.add_parser("submit", help="upload detected files for analysis (asks each time)")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    p.add_argument("--yes", action="store_true", help="confirm the upload of these files, as shown")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_submit)


def _warn(message: str) -> None:
    print(f"aegis: warning: {message}", file=sys.stderr)


def _store(paths: AegisPaths) -> Any:
    from ..privacy import ConsentStore

    return ConsentStore.for_paths(paths, warn=_warn)


def run_preview(args: argparse.Namespace) -> int:
    from ..privacy.preview import build_preview

    paths = AegisPaths.default()
    views = build_preview(paths, _store(paths), warn=_warn)
    if args.json:
        print(json.dumps({"purposes": views}, indent=2, ensure_ascii=False))
        return 0
    for view in views:
        state = "ON" if view["allowed"] else "OFF"
        print(f"== {view['title']} ({view['id']}): {state}")
        print(f"   endpoint: {view['endpoint'] or '(none configured: nothing can be sent)'}")
        print(f"   {view['note']}")
        for req in view["next"]:
            print(f"   {req['method']} {req['url']}")
            for k, v in req["headers"].items():
                print(f"   {k}: {v}")
            if req.get("body") is not None:
                print(f"   body ({len(req['body'].encode())} bytes before gzip):")
                print("   " + req["body"])
        print()
    return 0


def run_sent(args: argparse.Namespace) -> int:
    from ..privacy.sentlog import SentLog

    entries = SentLog.for_paths(AegisPaths.default()).entries()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return 0
    if not entries:
        print("Nothing has been sent from this profile.")
        return 0
    for e in entries:
        print(
            f"{e.time}  {e.purpose:<17} {e.method} {e.endpoint}  {e.bytes} bytes  HTTP {e.status}"
        )
        print("    " + json.dumps(e.payload, ensure_ascii=False))
    return 0


def run_send(args: argparse.Namespace) -> int:
    from ..privacy.sender import OTLP_PURPOSES, OutboxSender
    from ..privacy.wire import transport_for

    paths = AegisPaths.default()
    consent = _store(paths)
    wanted = args.purposes or list(OTLP_PURPOSES)
    for pid in wanted:
        if pid not in OTLP_PURPOSES:
            raise AegisError(
                f"{pid} is not sent from the outbox (choose {', '.join(OTLP_PURPOSES)})"
            )
    sender = OutboxSender.for_paths(
        paths, consent, lambda: transport_for(paths, consent), warn=_warn
    )
    code = 0
    for pid in wanted:
        try:
            result = sender.flush(pid, force=True)
        except AegisError as exc:
            print(f"{pid}: not sent: {exc}", file=sys.stderr)
            code = 2
            continue
        if result.status == "nothing-to-send":
            print(f"{pid}: nothing queued")
        else:
            print(f"{pid}: {result.sent} record(s) sent")
    return code


def _detections(engine: Any, path: Path) -> list[str]:
    names: list[str] = []
    engine.scan(
        [path],
        engine.default_options(use_cache=False),
        on_report=lambda r: names.extend(f.name for f in r.findings),
    )
    return list(dict.fromkeys(names))


def run_submit(args: argparse.Namespace) -> int:
    from ..engine import Engine
    from ..privacy.endpoints import CloudSettings
    from ..privacy.samples import offer_sample, submit_sample
    from ..privacy.sentlog import SentLog
    from ..privacy.wire import transport_for

    paths = AegisPaths.default()
    consent = _store(paths)
    consent.require("sample-submission")  # before reading or scanning anything
    cloud = CloudSettings.for_paths(paths)
    engine = Engine(paths, on_warning=_warn)
    code = 0
    try:
        for path in args.files:
            offer = offer_sample(path, _detections(engine, path))
            shown = offer.to_dict()
            if not args.yes:
                print(
                    f"{offer.name}: {offer.size} bytes, detections: "
                    f"{', '.join(offer.detections) or 'none'}; would be uploaded to "
                    f"{cloud.sample_submission_url or '(no endpoint configured)'} - not sent: "
                    "confirm this file with --yes",
                    file=sys.stderr,
                )
                code = 2
                continue
            status = submit_sample(
                offer,
                confirmed=True,
                consent=consent,
                cloud=cloud,
                transport=lambda: transport_for(paths, consent),
                sent_log=SentLog.for_paths(paths),
            )
            shown["status"] = status
            if args.json:
                print(json.dumps(shown, ensure_ascii=False))
            else:
                print(f"{offer.name}: sent ({offer.size} bytes, HTTP {status})")
    finally:
        engine.close()
    return code
