"""Pure logic of real-time protection: content signs, burst counting, attribution ranking,
behaviour rules, event JSON. No threads, no waiting."""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from aegis_engine.errors import BehaviourRulesError, ConfigError
from aegis_engine.monitor import (
    BehaviourRules,
    DetectionEvent,
    ErrorEvent,
    MonitorOptions,
    ProcessEvent,
    ProcessFacts,
    ProcessRef,
    RansomwareEvent,
    RuleHit,
    StatusEvent,
)
from aegis_engine.monitor.attribution import (
    Candidate,
    IoSampler,
    IoSnapshot,
    contenders,
    rank_candidates,
    settle,
)
from aegis_engine.monitor.bursts import BurstDetector, Op, unknown_extension_change
from aegis_engine.monitor.content_signs import (
    encrypted_threshold,
    entropy,
    is_known_extension,
    known_type,
    looks_encrypted,
)
from aegis_engine.monitor.options import FolderKinds
from aegis_engine.paths import AegisPaths

TEXT = (b"Quarterly budget review: revenue, costs and notes for the team. " * 200)[:4096]


# -- content signs ------------------------------------------------------------------------------
def test_entropy_separates_random_from_text() -> None:
    assert entropy(b"") == 0.0
    assert entropy(b"a" * 100) == 0.0
    assert entropy(os.urandom(4096)) > 7.9
    assert entropy(TEXT) < 5.0
    assert 7.3 < encrypted_threshold(4096, 0.6) < 7.4


def test_random_data_looks_encrypted_but_compressed_formats_do_not() -> None:
    opts = {"margin": 0.6, "min_sample": 512}
    assert looks_encrypted(os.urandom(4096), **opts)
    assert looks_encrypted(os.urandom(600), **opts)
    assert not looks_encrypted(os.urandom(100), **opts)  # too short to judge
    assert not looks_encrypted(TEXT, **opts)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("x.bin", os.urandom(8192))
    assert known_type(buf.getvalue()) == "zip"
    assert not looks_encrypted(buf.getvalue()[:4096], **opts)
    gz = gzip.compress(os.urandom(8192))
    assert known_type(gz) == "gzip" and not looks_encrypted(gz[:4096], **opts)
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(4092)
    assert not looks_encrypted(jpeg, **opts)
    zlib_stream = b"\x78\x9c" + os.urandom(4000)
    assert known_type(zlib_stream) == "zlib"


def test_extension_rules() -> None:
    assert is_known_extension("photo.JPG")
    assert is_known_extension("README")
    assert is_known_extension(".bashrc")
    assert is_known_extension("notes.txt~")
    assert not is_known_extension("notes.txt.locked")
    assert not is_known_extension("a.docx.xyz123")
    assert unknown_extension_change("/d/a.docx", "/d/a.docx.locked")
    assert not unknown_extension_change("/d/IMG_1.jpg", "/d/holiday-1.jpg")
    assert not unknown_extension_change("/d/IMG_1.jpg", "/d/IMG_1.jpeg")
    assert not unknown_extension_change("/d/a.weird", "/d/b.weird")


# -- bursts -------------------------------------------------------------------------------------
def _op(t: float, kind: str, path: str) -> Op:
    return Op(t, kind, path, "/r", 4096)


def test_two_encrypted_writes_and_one_destroyed_file_make_a_burst() -> None:
    d = BurstDetector(20.0, 2, 1)
    assert d.add(_op(0.0, "encrypted", "/r/a.locked")) is None
    assert d.add(_op(0.1, "destroyed", "/r/a")) is None
    assert d.add(_op(0.2, "encrypted", "/r/b.locked")) == "burst"


def test_deletions_alone_or_one_encrypted_file_are_not_a_burst() -> None:
    d = BurstDetector(20.0, 2, 1)
    for i in range(500):  # rm -rf, git checkout, tar --remove-files
        assert d.add(_op(i * 0.001, "destroyed", f"/r/f{i}")) is None
    assert d.add(_op(1.0, "encrypted", "/r/download.bin")) is None


def test_the_same_file_saved_again_and_again_counts_once() -> None:
    d = BurstDetector(20.0, 2, 1)
    assert d.add(_op(0.0, "destroyed", "/r/db.vault")) is None
    for i in range(50):
        assert d.add(_op(0.1 + i, "encrypted", "/r/db.vault")) is None


def test_operations_expire_with_the_window() -> None:
    d = BurstDetector(5.0, 2, 1)
    d.add(_op(0.0, "encrypted", "/r/a"))
    d.add(_op(0.1, "destroyed", "/r/b"))
    assert d.add(_op(10.0, "encrypted", "/r/c")) is None  # the first two expired
    assert d.counts() == (1, 0)
    assert d.quiet(100.0)


def test_canaries() -> None:
    d = BurstDetector(20.0, 2, 1)
    assert d.add(_op(0.0, "canary", "/r/.~x.pdf")) == "canary"
    d.reset()
    assert d.add(_op(0.0, "canary-deleted", "/r/.~x.pdf")) is None  # rm -rf of the folder
    for i in range(20):
        assert d.add(_op(0.1, "destroyed", f"/r/f{i}")) is None
    assert d.add(_op(0.2, "encrypted", "/r/a.enc")) == "canary"


# -- attribution ranking ------------------------------------------------------------------------
def _no_files(_pid: int) -> list[str]:
    return []


def test_the_process_that_reads_and_writes_like_ransomware_ranks_first() -> None:
    before = {10: (0, 0, 0, 0), 20: (0, 1000, 0, 0), 30: (0, 0, 0, 0), 99: (0, 0, 0, 0)}
    after = {
        10: (50_000_000, 50_000_000, 100, 12_000),  # a big writer that reads nothing
        20: (0, 5_000_000, 4_000_000, 90_000),  # chats on a socket: small writes
        30: (40_960, 40_000, 40_000, 4),  # read ~ wrote ~ observed, in bulk: the culprit
        99: (10**9, 10**9, 10**9, 10),  # ourselves, excluded
    }
    ranked = rank_candidates(before, after, observed=40_000, exclude=[99], open_files=_no_files)
    assert ranked[0].pid == 30 and {c.pid for c in ranked} == {10, 20, 30}
    assert ranked[0].reads_like_it_writes and ranked[0].bulk_writer
    by_pid = {c.pid: c for c in ranked}
    assert not by_pid[20].bulk_writer and not by_pid[10].reads_like_it_writes


def test_open_files_in_the_protected_folder_outrank_everything() -> None:
    before: dict[int, tuple[int, int, int, int]] = {}
    after = {10: (90_000, 90_000, 90_000, 3), 30: (1_000_000, 1_000_000, 0, 50)}
    ranked = rank_candidates(
        before,
        after,
        observed=90_000,
        exclude=[],
        open_files=lambda pid: ["/r/x"] if pid == 30 else [],
    )
    assert ranked[0].pid == 30


def test_a_busy_package_manager_does_not_outrank_the_writer_that_matches_the_burst() -> None:
    """Seen on a loaded machine: a package manager (reads about what it writes, in bulk: both
    traits) outranked the process that rewrote the decoy, whose reads were dominated by its
    own start-up. What the burst wrote is the better evidence."""
    before = {10: (0, 0, 0, 0), 30: (0, 0, 0, 0)}
    after = {
        10: (50_000_000, 50_000_000, 48_000_000, 400),  # pip install: 50 MB out, 48 MB in
        30: (16_384, 16_384, 900_000, 2),  # the attacker: wrote what the burst saw
    }
    ranked = rank_candidates(before, after, observed=16_000, exclude=[], open_files=_no_files)
    assert [c.pid for c in ranked] == [30, 10]
    assert ranked[0].matches_burst and ranked[0].traits == 1 and ranked[0].looks_the_part
    assert not ranked[1].matches_burst and ranked[1].traits == 2
    # a writer that only writes, far from the burst's size, is not evidence on its own
    lone = rank_candidates(
        before,
        {10: (50_000_000, 50_000_000, 0, 10)},
        observed=16_000,
        exclude=[],
        open_files=_no_files,
    )
    assert lone[0].traits == 1 and not lone[0].looks_the_part


def test_wchar_counts_where_write_bytes_does_not_and_pid_reuse_is_handled() -> None:
    before = {10: (5000, 9_000_000, 9_000_000, 100)}
    after = {10: (5000, 9_100_000, 9_100_000, 110)}  # tmpfs, or pages already dirty
    ranked = rank_candidates(before, after, observed=80_000, exclude=[], open_files=_no_files)
    assert [c.pid for c in ranked] == [10] and ranked[0].wrote == 100_000
    reused = {10: (8192, 100, 0, 1)}  # counters went down: a new process with the same pid
    ranked = rank_candidates(before, reused, observed=0, exclude=[], open_files=_no_files)
    assert [c.pid for c in ranked] == [10] and ranked[0].write_bytes == 8192
    quiet = {10: (5000, 9_000_100, 9_000_000, 101)}  # wrote 100 bytes: not a candidate
    assert rank_candidates(before, quiet, observed=0, exclude=[], open_files=_no_files) == []


# -- watching contenders the ranking cannot separate ----------------------------------------------
class _World(IoSampler):
    """Scripted processes and a real folder: at each step, ``writes[pid]`` says at which
    steps the process writes a file (12,016 bytes); a process in ``inside`` writes it in the
    folder (its modification time moves, set explicitly so that it moves every time), one in
    ``holding`` is seen with a file of the folder open at those steps. ``sleep`` is the step."""

    def __init__(
        self,
        folder: Path,
        writes: dict[int, set[int]],
        inside: set[int],
        holding: set[int] = frozenset(),  # type: ignore[assignment]
    ) -> None:
        super().__init__()
        self.folder = folder
        folder.mkdir(exist_ok=True)
        self.writes = writes
        self.inside = inside
        self.holding = holding
        self.t = 0
        self.wchar = dict.fromkeys(writes, 1_000_000)
        self.open: dict[int, list[str]] = {}

    def clock(self) -> float:
        return self.t * 0.001

    def sleep(self, _: float) -> None:
        self.t += 1
        self.open = {}
        for pid, steps in self.writes.items():
            if self.t in steps:
                self.wchar[pid] += 12_016
                if pid in self.inside:
                    os.utime(self.folder, ns=(self.t * 10**9, self.t * 10**9))
                if pid in self.holding:
                    self.open[pid] = [str(self.folder / f"f{self.t}")]

    def counters(self, pid: int) -> tuple[int, int, int, int] | None:
        w = self.wchar.get(pid)
        return None if w is None else (w, w, w, w // 12_016)

    def snapshot(self) -> IoSnapshot:
        return {p: c for p in self.wchar if (c := self.counters(p)) is not None}

    def open_files_under(self, pid: int, roots: object) -> list[str]:
        return self.open.get(pid, [])

    def open_for_writing_under(self, pid: int, roots: object) -> list[str]:
        return self.open.get(pid, [])


def _alike(*pids: int) -> list[Candidate]:
    """Candidates the ranking cannot separate: each wrote what the burst wrote, reads like it
    writes, in bulk; no protected file open when looked at."""
    return [Candidate(p, 24_576, 24_032, 24_000, 2, matches_burst=True) for p in pids]


def _settle(world: _World, found: list[Candidate]) -> tuple[list[Candidate], object]:
    return settle(
        found,
        sampler=world,
        roots=[str(world.folder)],
        dirs=[str(world.folder)],
        exclude=[],
        clock=world.clock,
        sleep=world.sleep,
    )


def test_files_open_for_writing_are_told_from_files_only_read(tmp_path: Path) -> None:
    """The watch counts a protected file held open for writing (an attacker), not one only
    read (a scanner, an indexer, a backup reading the same folder)."""
    written, read, both = (tmp_path / n for n in ("written", "read", "both"))
    read.write_bytes(b"x")
    both.write_bytes(b"x")
    with open(written, "wb"), open(read, "rb"), open(both, "r+b"):
        sampler = IoSampler()
        me = os.getpid()
        assert set(sampler.open_files_under(me, [str(tmp_path)])) == {
            str(written), str(read), str(both)
        }
        assert sorted(sampler.open_for_writing_under(me, [str(tmp_path)])) == [
            str(both), str(written)
        ]
    assert sampler.counters(me) is not None and sampler.counters(2**22 + 7) is None


def test_only_a_first_candidate_without_a_protected_file_open_is_watched() -> None:
    a, b = _alike(10, 20)
    assert contenders([a, b]) == [a, b]
    assert contenders([a]) == []  # a lone candidate that looks the part: the ranking settles
    held = Candidate(10, 24_576, 24_032, 24_000, 2, ("/r/x",), matches_burst=True)
    assert contenders([held, b]) == []  # the strong evidence is there: nothing to settle
    nobody = Candidate(10, 50_000_000, 50_000_000, 0, 10)  # does not look the part
    assert not nobody.looks_the_part and contenders([nobody, a]) == []
    assert contenders([]) == []


def test_the_writer_in_step_with_the_burst_goes_first_not_its_twin_elsewhere(
    tmp_path: Path,
) -> None:
    """Two identical writers, 40 files/s each (a file every 25 samples), out of phase: the
    ranking put the one writing elsewhere (20) first; the watch puts the one whose writes come
    with the protected folder's changes (10) first."""
    every = {10: set(range(3, 500, 25)), 20: set(range(15, 500, 25))}
    world = _World(tmp_path / "Documents", every, inside={10})
    ranked, watch = _settle(world, _alike(20, 10))
    assert [c.pid for c in ranked] == [10, 20]
    assert watch is not None and watch.touching(10) and not watch.touching(20)  # type: ignore[attr-defined]
    assert world.t < 200, "decided within a few files, not at the end of the window"
    assert ranked[0].looks_the_part


def test_the_one_seen_holding_a_protected_file_goes_first_with_the_file(tmp_path: Path) -> None:
    every = {10: set(range(5, 500, 7)), 20: set(range(5, 500, 7))}  # in phase: timing can't tell
    world = _World(tmp_path / "Documents", every, inside={10}, holding={10})
    ranked, _ = _settle(world, _alike(20, 10))
    assert [c.pid for c in ranked] == [10, 20]
    assert ranked[0].open_files and not ranked[1].open_files  # so only 10 is suspended


def test_when_the_watch_cannot_tell_the_ranking_stands(tmp_path: Path) -> None:
    """Nobody seen touching the folder, nor writing elsewhere: nothing is invented."""
    world = _World(tmp_path / "Documents", {10: set(), 20: set()}, inside=set())
    ranked, watch = _settle(world, _alike(20, 10))
    assert [c.pid for c in ranked] == [20, 10]
    assert watch is not None and world.t >= 300  # watched the whole window


def test_the_attacker_that_finished_goes_before_a_writer_seen_writing_elsewhere(
    tmp_path: Path,
) -> None:
    """Seen on a loaded machine, unthrottled: by the time the burst is read, the attacker has
    finished (no write, no change in the folder while watched) and the twin elsewhere keeps
    writing while the folder stands still. It is the attacker that is named."""
    world = _World(tmp_path / "Documents", {10: set(), 20: set(range(3, 500, 25))}, inside=set())
    ranked, watch = _settle(world, _alike(20, 10))
    assert watch is not None and watch.out_of_step(20) and not watch.out_of_step(10)  # type: ignore[attr-defined]
    assert [c.pid for c in ranked] == [10, 20]


def test_timing_that_any_writer_would_match_is_not_evidence(tmp_path: Path) -> None:
    """Samples far apart (a loaded machine): the folder changes next to nearly every sample,
    so writes elsewhere seem in step too; nobody is taken on timing alone."""
    every = {10: set(range(1, 500, 2)), 20: set(range(2, 500, 2))}
    world = _World(tmp_path / "Documents", every, inside={10})
    ranked, watch = _settle(world, _alike(20, 10))
    assert watch is not None and watch.chance() > 0.9  # type: ignore[attr-defined]
    assert not watch.touching(10) and not watch.touching(20)  # type: ignore[attr-defined]
    assert [c.pid for c in ranked] == [20, 10]


def test_a_writer_missing_from_the_ranking_is_found_while_watching(tmp_path: Path) -> None:
    """On a loaded machine the attacker's writes may all predate the baseline (their events
    were read after it): only the twin elsewhere and another busy program are ranked. The
    counters read again during the watch bring the attacker in, and it goes first."""
    every = {10: set(range(3, 500, 25)), 20: set(range(15, 500, 25)), 30: set(range(9, 500, 25))}
    world = _World(tmp_path / "Documents", every, inside={10})
    ranked, watch = _settle(world, _alike(20, 30))
    assert [c.pid for c in ranked][:1] == [10] and {c.pid for c in ranked} == {10, 20, 30}
    assert watch is not None and 10 in watch.seen  # type: ignore[attr-defined]


# -- behaviour rules ----------------------------------------------------------------------------
def _folders(tmp: Path) -> FolderKinds:
    return FolderKinds(
        {
            "temp": (str(tmp / "tmp"),),
            "downloads": (str(tmp / "dl"),),
            "home": (str(tmp),),
        }
    )


def test_bundled_rules_load_and_each_fires_on_its_behaviour(tmp_path: Path) -> None:
    rules = BehaviourRules.default(AegisPaths.under(tmp_path / "home"))
    ids = {r.id for r in rules.rules}
    assert {"AEGIS-B001", "AEGIS-B002", "AEGIS-B003", "AEGIS-B004", "AEGIS-B005"} <= ids
    folders = _folders(tmp_path)

    def fired(**facts: object) -> set[str]:
        base: dict[str, object] = {"pid": 42, "name": "x"}
        base.update(facts)
        return {h.id for h in rules.evaluate(ProcessFacts(**base), folders)}  # type: ignore[arg-type]

    assert fired(name="svchost.exe", exe=str(tmp_path / "dl" / "svchost.exe")) == {"AEGIS-B001"}
    assert fired(name="sshd", exe="/usr/sbin/sshd") == set()  # where it belongs
    assert fired(name="x", exe=str(tmp_path / "tmp" / "x"), exe_deleted=True) == {"AEGIS-B002"}
    assert fired(name="nginx", exe="/usr/sbin/nginx", exe_deleted=True) == set()  # upgraded
    assert fired(name="x", exe="/opt/x", verdict="malicious") == {"AEGIS-B004"}
    assert fired(name="bash", exe="/usr/bin/bash", parent_name="soffice.bin") == {"AEGIS-B005"}
    assert fired(name="bash", exe="/usr/bin/bash", parent_name="gnome-terminal") == set()
    bad = "ab" * 32
    with_hash = rules.with_sha256("AEGIS-B003", [bad])
    hits = with_hash.evaluate(ProcessFacts(pid=1, name="x", sha256=bad), folders)
    assert [h.id for h in hits] == ["AEGIS-B003"]
    assert bad in hits[0].explanation and hits[0].severity == "malicious"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rule]]\nid='A'\nexplanation='x'\n[rule.when]\nbogus=1\n", "unknown condition"),
        ("[[rule]]\nid='A'\nexplanation='x'\n[rule.when]\nsha256=['zz']\n", "not a SHA-256"),
        ("[[rule]]\nid='A'\n[rule.when]\nname=['x']\n", "explanation"),
        ("[[rule]]\nid='A'\nexplanation='{nope}'\n[rule.when]\nname=['x']\n", "placeholder"),
        ("[[rule]]\nid='A'\nexplanation='x'\n", "at least one condition"),
        (
            "[[rule]]\nid='A'\nexplanation='x'\nseverity='fatal'\n[rule.when]\nname=['x']\n",
            "severity",
        ),
        (
            "[[rule]]\nid='A'\nexplanation='x'\n[rule.when]\nname=['x']\n"
            "[[rule]]\nid='A'\nexplanation='y'\n[rule.when]\nname=['y']\n",
            "duplicate",
        ),
        ("schema = 2\n", "schema"),
        ("[[rule]\n", "rules"),
    ],
)
def test_invalid_rule_files_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(BehaviourRulesError, match=message):
        BehaviourRules.parse(text, "rules")


def test_options_are_validated() -> None:
    with pytest.raises(ConfigError):
        MonitorOptions(backend="magic")
    with pytest.raises(ConfigError):
        MonitorOptions(max_pending=0)


# -- events -------------------------------------------------------------------------------------
def test_every_event_has_the_json_contract() -> None:
    events = [
        DetectionEvent(
            path="/d/e.com",
            verdict="malicious",
            action="quarantine",
            detections=("EICAR-Test-File",),
            details={"quarantine_id": "ab"},
        ),
        ProcessEvent(
            pid=5,
            name="x",
            exe="/tmp/x",
            verdict="suspicious",
            action="report",
            rules=(RuleHit("AEGIS-B001", "suspicious", "why"),),
        ),
        RansomwareEvent(
            incident="R1",
            action="suspended",
            path="/d",
            processes=(ProcessRef(7, "p", "/bin/p", "suspended"),),
            files=("/d/a",),
            files_total=1,
        ),
        ErrorEvent(code="overflow", message="m", path="/d"),
        StatusEvent(state="started"),
    ]
    kinds = []
    for e in events:
        d = json.loads(json.dumps(e.to_dict()))
        assert isinstance(d["ts"], float)
        kinds.append(d["event"])
    assert kinds == ["detection", "process", "ransomware", "error", "status"]
    det, proc, ran, err, _ = (e.to_dict() for e in events)
    assert det["path"] == "/d/e.com" and det["verdict"] == "malicious"
    assert det["action"] == "quarantine" and det["quarantine_id"] == "ab"
    assert proc["pid"] == 5 and proc["path"] == "/tmp/x" and proc["rules"][0]["id"] == "AEGIS-B001"
    assert ran["pid"] == 7 and ran["action"] == "suspended" and ran["verdict"] == "malicious"
    assert ran["files"] == ["/d/a"]
    assert err["code"] == "overflow" and "pid" not in err
