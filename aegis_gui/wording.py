"""Words for people where the engine speaks to engineers: what a privacy purpose sends, why
a file was not fully scanned, and the engine's warnings about where the quarantine's key is
kept (pure functions)."""

from __future__ import annotations

import re

from aegis_engine.display import readable_sizes
from aegis_engine.privacy import Purpose

PLAIN_SENDS = {
    "update-checks": "the Aegis version and the version of your signatures",
    "cloud-lookup": "the first 5 characters of a file's fingerprint, never the file, its "
    "name or the whole fingerprint",
    "sample-submission": "a detected file you choose to send, with its fingerprint, size "
    "and what it was detected as",
    "crash-reports": "the Aegis, system and Python versions, and where in Aegis's own code "
    "the error happened (no file names)",
    "usage-stats": "the Aegis version, the kind of system, and counts such as files "
    "scanned and threats found",
}


def plain_sends(purpose: Purpose) -> str:
    """One line saying what ``purpose`` sends, without data-field names."""
    known = PLAIN_SENDS.get(purpose.id)
    if known is not None:
        return known
    return ", ".join(f.description.split(";")[0].split(",")[0] for f in purpose.sends)


def field_names(purpose: Purpose) -> str:
    """The data fields, for those who want them: ``aegis_version, signature_version``."""
    return ", ".join(f.name for f in purpose.sends)


PROBLEM_WORDS = {
    "max-file-size": "Too large to scan whole",
    "max-files": "Too many files inside",
    "max-scan-size": "Too much to unpack",
    "max-scan-time": "Took too long to scan",
    "max-recursion": "Nested too deep",
    "encrypted": "Password-protected",
    "unsupported": "Cannot be unpacked",
}


def plain_problem(problem: str, *, detail: bool = True) -> str:
    """Why a file was not fully scanned, for people: the engine's ``code: detail`` (e.g.
    ``max-file-size: 199603328 bytes is over the limit of 104857600``) becomes ``Too large
    to scan whole: 190.4 MiB is over the limit of 100 MiB`` (without ``detail``: ``Too large
    to scan whole``); unknown codes keep their text."""
    code, sep, rest = problem.partition(": ")
    words = PROBLEM_WORDS.get(code.strip()) if sep else None
    if words is None:
        return readable_sizes(problem)
    return f"{words}: {readable_sizes(rest)}" if rest and detail else words


_KEY_OFF = re.compile(r"vault key (?:will be|is) kept in a file.*keyring use is turned off")
_NO_KEYRING = re.compile(r"^no usable OS keyring \((?P<why>.*)\); the quarantine vault key")
_KEY_FILE = re.compile(r"quarantine vault key (?:will be|is) kept in a file")


def plain_note(message: str) -> str:
    """An engine warning as the tray's tooltip and the status window show it: the vault
    key's file path and keyring class names become plain words (the log keeps the whole
    message)."""
    if _KEY_OFF.search(message):
        return (
            "The quarantine's key is kept in a file only you can read, not in your "
            "system's keyring: keyring use is turned off in the settings."
        )
    if _NO_KEYRING.search(message) or _KEY_FILE.search(message):
        return (
            "The quarantine's key is kept in a file only you can read: no system keyring "
            "was available. Install and unlock one (e.g. GNOME Keyring or KWallet) to "
            "keep it there instead."
        )
    return message[0].upper() + message[1:] if message else message


__all__ = [
    "PLAIN_SENDS",
    "PROBLEM_WORDS",
    "field_names",
    "plain_note",
    "plain_problem",
    "plain_sends",
]
