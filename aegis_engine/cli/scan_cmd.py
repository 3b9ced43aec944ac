"""``aegis scan``: scan files and folders.

Exit 0: nothing found. Exit 1: at least one threat. Exit 2: nothing found, but some input
could not be scanned (missing path, unreadable, limit exceeded).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..config import ScanOptions
from ..decision import FileDecision
from ..display import readable_sizes
from ..engine import Engine
from ..errors import ConfigError
from ..response import Mode, Response
from ..results import FileReport, ObjectResult, ScanSummary, Severity
from ..scanning.pipeline import ScanProgress
from .output import ProgressLine, display_path, human_bytes, parse_size


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def register(sub: Any) -> None:
    p = sub.add_parser(
        "scan", help="scan files and folders", description="Scan files and folders for threats."
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to scan")
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line for each object that is not clean, then a summary line",
    )
    p.add_argument(
        "--rules",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="YARA rule file or folder, added to the bundled rules (repeatable)",
    )
    p.add_argument(
        "--hashes",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="hash list (.hdb .hsb .fp .sfp), added to the bundled lists (repeatable)",
    )
    p.add_argument(
        "--no-bundled",
        action="store_true",
        help="do not load the bundled rules and hash lists: use only --rules and --hashes "
        "(EICAR is always detected)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="scan every file again, even if unchanged since the last scan",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="GLOB",
        help="skip paths or names matching this glob (repeatable)",
    )
    p.add_argument(
        "--jobs", type=int, default=0, metavar="N", help="worker processes (default: one per core)"
    )
    p.add_argument("--no-archives", action="store_true", help="do not look inside archives")
    p.add_argument(
        "--follow-symlinks",
        action="store_true",
        help="follow symlinks inside folders (loops are always detected)",
    )
    p.add_argument(
        "--max-filesize",
        type=_size,
        metavar="SIZE",
        help="skip (and report) files larger than this, e.g. 100M",
    )
    p.add_argument(
        "--max-scansize",
        type=_size,
        metavar="SIZE",
        help="most bytes extracted from one file's archives, e.g. 400M",
    )
    p.add_argument("--max-recursion", type=int, metavar="N", help="deepest archive nesting")
    p.add_argument("--max-files", type=int, metavar="N", help="most members of one archive")
    p.add_argument(
        "--max-scantime",
        type=float,
        metavar="SECONDS",
        help="longest time for one file and its archives",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only threats and problems, no summary"
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="show progress on stderr even when it is not a terminal "
        f"(then one line every {ProgressLine.LINE_INTERVAL:g} s)",
    )
    p.add_argument(
        "--quarantine",
        action="store_true",
        help="apply the policy: quarantine what it says to (by default signature-grade "
        "detections); on a terminal, ask about the rest",
    )
    p.set_defaults(run=run)


def _options(engine: Engine, args: argparse.Namespace) -> ScanOptions:
    limits = engine.limits
    changes = {
        "max_file_size": args.max_filesize,
        "max_scan_size": args.max_scansize,
        "max_recursion": args.max_recursion,
        "max_files": args.max_files,
        "max_scan_time": args.max_scantime,
    }
    limits = replace(limits, **{k: v for k, v in changes.items() if v is not None})
    if args.jobs < 0:
        raise ConfigError("--jobs must be 0 (one per core) or more")
    return ScanOptions(
        limits=limits,
        jobs=args.jobs,
        use_cache=not args.no_cache,
        exclude=tuple(args.exclude),
        follow_symlinks=args.follow_symlinks,
        scan_archives=not args.no_archives,
    )


def _check_inputs(args: argparse.Namespace) -> None:
    for p in [*args.rules, *args.hashes]:
        if not p.exists():
            raise ConfigError(f"no such rule or hash file: {p}")


def object_json(obj: ObjectResult, report: FileReport) -> dict[str, Any]:
    out = obj.to_dict()
    out["path"] = display_path(obj.path)
    if obj.path != report.path:
        out["file"] = display_path(report.path)
    return out


def _print_human(report: FileReport, out: Any) -> None:
    for obj in report.objects:
        label = obj.verdict.value.upper()
        out.write(f"{label:<11} {display_path(obj.path)}\n")
        for f in obj.findings:
            if f.severity is Severity.INFO and not obj.verdict.is_threat:
                continue
            out.write(f"{'':12}{f.name}  [{f.detector}, {f.severity.value}, score {f.score:.2f}]\n")
        for problem in obj.problems:
            out.write(f"{'':12}{readable_sizes(problem)}\n")


def _decision_fields(obj: ObjectResult, response: Response) -> dict[str, Any]:
    """The ``action`` and ``explanation`` keys of one object's JSON line."""
    fields = response.to_dict()
    for d in response.decision.decisions:
        if d.object_path == obj.path:
            note = [response.note] if response.note else []
            fields["explanation"] = [*response.decision_lines(d), *note]
    return fields


def _print_explanation(report: FileReport, response: Response, out: Any) -> None:
    """For people: why (verdict, action lines; the findings are printed above) and outcome."""
    for d in response.decision.decisions:
        if d.verdict.is_threat:
            for line in response.decision_lines(d)[len(d.evidence) :]:
                out.write(f"{'':12}{line}\n")
    if response.note:
        out.write(f"{'':12}{response.note}\n")


def _ask_on_terminal(fd: FileDecision) -> bool:
    answer = input(f"Quarantine {display_path(fd.file_path)}? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _print_summary(summary: ScanSummary, out: Any) -> None:
    cached = f" ({summary.cached} unchanged since the last scan)" if summary.cached else ""
    out.write("\n----------- SCAN SUMMARY -----------\n")
    out.write(f"Files scanned:     {summary.files}{cached}\n")
    out.write(f"Data scanned:      {human_bytes(summary.bytes)}\n")
    out.write(f"Threats found:     {summary.threats}\n")
    out.write(f"Not fully scanned: {summary.incomplete + summary.errors}\n")
    out.write(f"Time:              {summary.seconds:.2f} s\n")
    if summary.cancelled:
        out.write("The scan was cancelled before it finished.\n")


def run(args: argparse.Namespace) -> int:
    _check_inputs(args)
    out = sys.stdout
    progress = (
        ProgressLine(sys.stderr, force=args.progress)
        if args.progress or not (args.json or args.quiet)
        else None
    )

    def warn(message: str) -> None:
        if progress:
            progress.clear()
        print(f"aegis: warning: {message}", file=sys.stderr)

    engine = Engine(
        extra_rules=args.rules,
        extra_hashes=args.hashes,
        bundled_content=not args.no_bundled,
        on_warning=warn,
    )
    options = _options(engine, args)
    interactive = args.quarantine and not args.json and sys.stdin.isatty()
    ask = _ask_on_terminal if interactive else None
    mode = Mode.ACT if args.quarantine else Mode.REPORT
    responses: dict[int, Response] = {}

    from ..privacy.hooks import ScanPrivacy

    privacy = ScanPrivacy(engine.paths, warn)  # look-ups and statistics only if allowed

    def decide(report: FileReport) -> None:
        privacy.before_decision(report)
        # The vault and the history open at the first threat: a clean scan never pays for
        # them (keyring, cryptography, the database).
        responses[id(report)] = engine.outcomes.respond(report, mode=mode, client="scan", ask=ask)

    def on_report(report: FileReport) -> None:
        response = responses.pop(id(report), None)
        if response is None:
            return
        if progress:
            progress.clear()
        if args.json:
            for obj in report.objects:
                line = object_json(obj, report)
                line.update(_decision_fields(obj, response))
                out.write(json.dumps(line) + "\n")
            out.flush()
        else:
            _print_human(report, out)
            _print_explanation(report, response, out)
            out.flush()

    def on_progress(p: ScanProgress) -> None:
        if progress:
            progress.update(
                f"Scanning: {p.files} files, {human_bytes(p.bytes)}, "
                f"{p.threats} threats  {display_path(p.current)}"
            )

    cancel = threading.Event()
    try:
        summary = engine.scan(
            args.paths,
            options,
            on_report=on_report,
            on_progress=on_progress,
            cancel=cancel,
            decide=decide,
        )
    finally:
        if progress:
            progress.clear()
        engine.close()
    privacy.after_scan(summary)
    if args.json:
        out.write(json.dumps({"summary": summary.to_dict()}) + "\n")
    elif not args.quiet:
        _print_summary(summary, out)
    out.flush()
    code = summary.exit_code
    problems = engine.content_problems()
    if code == 0 and problems:  # a skipped list or rule file: never a silent "clean"
        print(
            f"aegis: error: {len(problems)} signature file(s) could not be used (see the "
            "warnings above); nothing was found with the others",
            file=sys.stderr,
        )
        code = 2
    return code
