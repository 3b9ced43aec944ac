"""The one redactor every outgoing record passes: nothing that names a person, a machine or a
file survives it.

:meth:`Redactor.text` removes home folders, user and host names (this machine's, and any
given), file paths and file names, IP addresses and e-mail addresses, replacing each with a
placeholder (``<home>``, ``<user>``, ``<host>``, ``<path>``, ``<file>``, ``<ip>``,
``<email>``). :meth:`Redactor.traceback` keeps only the exception's type and the stack of
Aegis functions (``aegis_engine/scanning/walk.py:120 in walk``); messages and frames outside
Aegis are never kept. :func:`coarse_time` rounds a moment down to the hour. No install or
machine identifier is ever produced here or anywhere else in this package.
"""

from __future__ import annotations

import getpass
import os
import platform
import re
import traceback as _traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["AEGIS_PACKAGES", "Redactor", "coarse_time"]

AEGIS_PACKAGES = ("aegis_engine", "aegis_gui")

_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)*", re.UNICODE)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[\w.]+)?(?![\w:])")
# Anything with a path separator between two non-space characters, a drive letter, a UNC
# share or a leading ~: a path. Quoted or not.
_PATH = re.compile(
    r"(?:[A-Za-z]:[\\/]|\\\\|~[\\/]|[\\/])?(?:[^\s\\/'\"<>|]+[\\/])+[^\s\\/'\"<>|]*"
    r"|(?<!\S)[\\/][^\s'\"<>|]*"
)
# A word with an extension: a file name.
_FILE = re.compile(r"(?<![\w<])[\w~$#@!&+=,-][\w~$#@!&+=,. -]*?\.[A-Za-z0-9_-]{1,10}(?![\w>])")
_FRAME_FILE = re.compile(r"^[A-Za-z0-9_/]+\.py$")
_FUNC = re.compile(r"^[A-Za-z_<][A-Za-z0-9_<>]*$")
_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,127}$")


def coarse_time(moment: datetime | None = None) -> datetime:
    """``moment`` (default now) rounded down to the hour, in UTC."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.replace(minute=0, second=0, microsecond=0)


def _this_user() -> list[str]:
    names: list[str] = []
    for get in (
        getpass.getuser,
        lambda: os.environ.get("USER", ""),
        lambda: os.environ.get("LOGNAME", ""),
    ):
        try:
            value = get()
        except (KeyError, OSError):  # no passwd entry
            continue
        if value:
            names.append(value)
    try:
        import pwd

        gecos = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0]
        names.extend(part for part in [gecos, *gecos.split()] if len(part) >= 3)
    except (ImportError, KeyError, OSError):
        pass
    return names


def _this_host() -> list[str]:
    names: list[str] = []
    host = platform.node()
    if host:
        names.extend([host, host.split(".")[0]])
    return names


def _this_homes() -> list[str]:
    homes: list[str] = []
    for value in (os.environ.get("HOME", ""), str(Path.home())):
        if value and value not in ("/", "\\"):
            homes.append(value.rstrip("/\\"))
    return homes


@dataclass(frozen=True)
class Redactor:
    """Removes what identifies a person, a machine or a file from text.

    Build it with :meth:`for_this_machine` (this user's, host's and home folder's names, plus
    any extra ones) or directly (tests)."""

    user_names: tuple[str, ...] = ()
    host_names: tuple[str, ...] = ()
    home_dirs: tuple[str, ...] = ()
    placeholders: dict[str, str] = field(
        default_factory=lambda: {"home": "<home>", "user": "<user>", "host": "<host>"}
    )

    @classmethod
    def for_this_machine(
        cls,
        *,
        user_names: Iterable[str] = (),
        host_names: Iterable[str] = (),
        home_dirs: Iterable[str] = (),
    ) -> Redactor:
        return cls(
            user_names=_unique([*_this_user(), *user_names]),
            host_names=_unique([*_this_host(), *host_names]),
            home_dirs=_unique([*_this_homes(), *home_dirs]),
        )

    def text(self, value: str) -> str:
        """``value`` with every identifying part replaced by a placeholder."""
        out = value
        for home in sorted(self.home_dirs, key=len, reverse=True):
            out = _replace_all(out, home, self.placeholders["home"])
        out = _EMAIL.sub("<email>", out)
        out = _PATH.sub(_path_placeholder, out)
        out = _IPV4.sub("<ip>", out)
        out = _IPV6.sub(_ipv6_placeholder, out)
        out = _FILE.sub("<file>", out)
        for name in sorted(self.user_names, key=len, reverse=True):
            out = _replace_all(out, name, self.placeholders["user"])
        for name in sorted(self.host_names, key=len, reverse=True):
            out = _replace_all(out, name, self.placeholders["host"])
        return out

    def error_type(self, exc: BaseException) -> str:
        """The exception's class name (qualified for Aegis errors), nothing of its message."""
        cls = type(exc)
        name = cls.__qualname__
        if cls.__module__.split(".")[0] in AEGIS_PACKAGES:
            name = f"{cls.__module__}.{name}"
        return name if _TYPE.match(name) else "<error>"

    def traceback(self, exc: BaseException) -> list[str]:
        """The stack of the failure, innermost last: ``aegis_engine/x.py:12 in func`` for
        Aegis's own frames, ``<external>`` for any other (collapsed when repeated). Messages,
        local variables and paths outside the package are never part of it."""
        frames: list[str] = []
        for summary in _traceback.extract_tb(exc.__traceback__):
            line = _aegis_frame(summary.filename, summary.lineno or 0, summary.name)
            if line is None:
                line = "<external>"
            if line == "<external>" and frames and frames[-1] == line:
                continue
            frames.append(line)
        return frames[-40:]


def _aegis_frame(filename: str, lineno: int, func: str) -> str | None:
    parts = Path(filename).parts
    for i, part in enumerate(parts):
        if part in AEGIS_PACKAGES:
            rel = "/".join(parts[i:])
            if not _FRAME_FILE.match(rel) or not _FUNC.match(func):
                return None
            return f"{rel}:{int(lineno)} in {func}"
    return None


def _replace_all(text: str, needle: str, placeholder: str) -> str:
    if len(needle) < 2:
        return text
    return re.sub(re.escape(needle), placeholder, text, flags=re.IGNORECASE)


def _path_placeholder(match: re.Match[str]) -> str:
    text = match.group(0)
    if text in ("/", "\\", "//"):
        return text
    if text.startswith("<") or re.fullmatch(r"\d+/\d+", text):  # placeholders, fractions
        return text
    return "<path>"


def _ipv6_placeholder(match: re.Match[str]) -> str:
    text = match.group(0)
    # At least two groups with hex digits: "a:b" or "12:30" alone are not addresses.
    return "<ip>" if text.count(":") >= 2 and sum(c.isalnum() for c in text) >= 2 else text


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v and len(v) >= 2))
