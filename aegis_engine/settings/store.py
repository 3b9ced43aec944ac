"""The one reader and writer of ``settings.toml``.

Reading never fails: a value of the wrong type, an unknown key, a file that is not TOML or
cannot be read each become a :class:`SettingsProblem` (naming the key and the line) and the
default applies for what is affected. Writing validates every changed value first
(:class:`~aegis_engine.errors.ConfigError` naming the key), keeps every other line's value as
it was in the file (unknown keys and values that were set aside included), and is atomic.
A file that is not TOML is moved aside (``settings.toml.corrupt-<time>``) before the first
write, so nothing the user typed is lost.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..errors import ConfigError
from .schema import SCHEMA, check
from .toml_write import dumps
from .typed import Settings

__all__ = ["MAX_SETTINGS_BYTES", "SettingsProblem", "SettingsStore"]

MAX_SETTINGS_BYTES = 1024 * 1024
"""A settings file larger than this is refused (it is not one a person wrote)."""

Listener = Callable[[Settings], None]


@dataclass(frozen=True)
class SettingsProblem:
    """Something in the settings file that was not used, and why."""

    message: str
    table: str | None = None
    key: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        return self.message


@dataclass
class _Raw:
    data: dict[str, Any] = field(default_factory=dict)
    text: str = ""
    corrupt: bool = False
    problems: list[SettingsProblem] = field(default_factory=list)


def _locate(text: str, table: str | None, key: str | None) -> int | None:
    """The line (1-based) of ``[table] key = ...`` (or of ``[table]``) in ``text``."""
    current: str | None = None
    header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = m.group(1).strip().strip('"')
            if key is None and current == table:
                return number
            continue
        if (
            key is not None
            and current == table
            and re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", line)
        ):
            return number
    return None


class SettingsStore:
    """Reads, validates and writes one settings file; tells listeners about every change.

    Thread-safe. ``current`` is the last loaded :class:`Settings`; :meth:`reload` reads the file
    again; :meth:`update` writes changes; both notify :meth:`subscribe`\\ d listeners when the
    settings changed.
    """

    def __init__(self, path: Path, *, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self._warn = warn
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._stamp: tuple[int, int, int] | None = None
        self._current = self._load(report=True)

    # -- reading -------------------------------------------------------------------------------
    @property
    def current(self) -> Settings:
        with self._lock:
            return self._current

    def reload(self) -> Settings:
        """Read the file again; listeners hear about it when something changed."""
        with self._lock:
            old, self._current = self._current, self._load(report=True)
            new = self._current
        if new.values != old.values:
            self._notify(new)
        return new

    def refresh(self) -> Settings:
        """Reload only when the file changed since it was read (one ``stat``): another
        process (``aegis quarantine restore --allow``, the tray app) may have written it."""
        if self._file_stamp() != self._stamp:
            return self.reload()
        return self.current

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(settings)`` after each change; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, settings: Settings) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(settings)

    def _read_raw(self) -> _Raw:
        raw = _Raw()
        where = str(self.path)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return raw
        except OSError as exc:
            raw.problems.append(
                SettingsProblem(f"cannot read settings {where}: {exc.strerror}; defaults are used")
            )
            return raw
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raw.problems.append(
                    SettingsProblem(f"settings {where} is not a regular file; defaults are used")
                )
                raw.corrupt = True
                return raw
            chunks: list[bytes] = []
            size = 0
            while size <= MAX_SETTINGS_BYTES:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raw.problems.append(
                SettingsProblem(f"cannot read settings {where}: {exc.strerror}; defaults are used")
            )
            return raw
        finally:
            os.close(fd)
        if size > MAX_SETTINGS_BYTES:
            raw.problems.append(
                SettingsProblem(
                    f"settings {where} is larger than {MAX_SETTINGS_BYTES // 1024} KiB; "
                    "defaults are used"
                )
            )
            raw.corrupt = True
            return raw
        import tomllib

        try:
            raw.text = b"".join(chunks).decode("utf-8")
            raw.data = tomllib.loads(raw.text)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError) as exc:
            line = re.search(r"line (\d+)", str(exc))
            raw.problems.append(
                SettingsProblem(
                    f"settings {where} is not valid TOML ({exc}); defaults are used and the "
                    "file is kept as it is",
                    line=int(line.group(1)) if line else None,
                )
            )
            raw.data = {}
            raw.corrupt = True
        return raw

    def _load(self, *, report: bool) -> Settings:
        self._stamp = self._file_stamp()
        raw = self._read_raw()
        problems = list(raw.problems)
        values: dict[str, dict[str, Any]] = {
            table: {k: spec.default for k, spec in keys.items()} for table, keys in SCHEMA.items()
        }
        where = str(self.path)
        for table, body in raw.data.items():
            if table not in SCHEMA:
                line = _locate(raw.text, table, None)
                problems.append(
                    SettingsProblem(
                        f"settings {where}{_at(line)}: unknown table [{table}] is ignored",
                        table=table,
                        line=line,
                    )
                )
                continue
            if not isinstance(body, Mapping):
                line = _locate(raw.text, None, table)
                problems.append(
                    SettingsProblem(
                        f"settings {where}{_at(line)}: {table} must be a table ([{table}]); "
                        "its defaults are used",
                        table=table,
                        line=line,
                    )
                )
                continue
            for key, value in body.items():
                line = _locate(raw.text, table, key)
                spec = SCHEMA[table].get(key)
                if spec is None:
                    problems.append(
                        SettingsProblem(
                            f"settings {where}{_at(line)}: unknown setting [{table}] {key} "
                            "is ignored",
                            table=table,
                            key=key,
                            line=line,
                        )
                    )
                    continue
                problem = spec.check(value)
                if problem is not None:
                    problems.append(
                        SettingsProblem(
                            f"settings {where}{_at(line)}: [{table}] {key} = {_show(value)} is "
                            f"not valid ({problem}); the default {_show(spec.default)} is used",
                            table=table,
                            key=key,
                            line=line,
                        )
                    )
                    continue
                values[table][key] = value
        settings = Settings(values, tuple(str(p) for p in problems))
        if report and self._warn is not None:
            for p in problems:
                self._warn(str(p))
        return settings

    # -- writing -------------------------------------------------------------------------------
    def update(self, changes: Mapping[str, Mapping[str, Any]]) -> Settings:
        """Write ``{table: {key: value}}`` (None removes the key, so its default applies).

        Every value is checked first: one invalid value raises ConfigError naming it and
        nothing is written. Everything else in the file stays as it was."""
        for table, body in changes.items():
            for key, value in body.items():
                if value is None:
                    continue
                problem = check(table, key, value)
                if problem is not None:
                    raise ConfigError(f"[{table}] {key} = {_show(value)}: {problem}")
        with self._lock:
            raw = self._read_raw()
            data = raw.data
            if raw.corrupt:
                self._set_aside()
            for table, body in changes.items():
                current = data.get(table, {})
                merged = dict(current) if isinstance(current, Mapping) else {}
                for key, value in body.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                if merged:
                    data[table] = merged
                else:
                    data.pop(table, None)
            try:
                atomic_write(self.path, dumps(data).encode("utf-8"))
            except OSError as exc:
                raise ConfigError(
                    f"cannot save settings to {self.path}: {exc.strerror or exc}; "
                    "the change was not saved"
                ) from exc
            old, self._current = self._current, self._load(report=False)
            new = self._current
        if new.values != old.values:
            self._notify(new)
        return new

    def add_to_list(self, table: str, key: str, value: Any) -> Settings:
        """Append ``value`` to the list ``[table] key`` unless it is there already."""
        with self._lock:
            current = list(self.current.get(table, key))
            if value in current:
                return self.current
            return self.update({table: {key: [*current, value]}})

    def remove_from_list(self, table: str, key: str, value: Any) -> Settings:
        """Remove ``value`` from the list ``[table] key`` (nothing to do when it is absent)."""
        with self._lock:
            current = list(self.current.get(table, key))
            if value not in current:
                return self.current
            return self.update({table: {key: [v for v in current if v != value] or None}})

    def _set_aside(self) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise ConfigError(
                f"settings {self.path} is damaged and cannot be moved aside ({exc.strerror}); "
                "the change was not saved"
            ) from exc
        if self._warn is not None:
            self._warn(f"the damaged settings file was kept as {aside}")


def _at(line: int | None) -> str:
    return f" line {line}" if line is not None else ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
