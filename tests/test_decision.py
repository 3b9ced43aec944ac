"""The decision engine: verdict table, policy, explanations, exclusions (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from aegis_engine.decision import (
    Action,
    Basis,
    Decision,
    DecisionEngine,
    Exclusions,
    Policy,
    strongest,
)
from aegis_engine.errors import ConfigError
from aegis_engine.results import (
    FileReport,
    Finding,
    FindingKind,
    ObjectResult,
    Severity,
    Verdict,
)

SIG, HEUR, ML = FindingKind.SIGNATURE, FindingKind.HEURISTIC, FindingKind.ML
MAL, SUS, INFO = Severity.MALICIOUS, Severity.SUSPICIOUS, Severity.INFO
FILE = "/home/u/Downloads/setup.exe"
SHA = "a" * 64


def f(kind: FindingKind, sev: Severity, name: str = "", detector: str = "", **kw: Any) -> Finding:
    return Finding(
        detector=detector or kind.value,
        name=name or f"{kind.value}-{sev.value}",
        severity=sev,
        kind=kind,
        **kw,
    )


def obj(*findings: Finding, verdict: Verdict = Verdict.MALICIOUS, **kw: Any) -> ObjectResult:
    return ObjectResult(FILE, verdict, list(findings), **kw)


def decide(*findings: Finding, engine: DecisionEngine | None = None, **kw: Any) -> Decision:
    return (engine or DecisionEngine()).decide(obj(*findings, **kw), file_path=FILE)


# --- the verdict table, with the default policy ---------------------------------------------

TABLE = [
    # (findings, verdict, basis, action)
    ([f(SIG, MAL)], Verdict.MALICIOUS, Basis.SIGNATURE, Action.QUARANTINE),
    ([f(SIG, MAL), f(ML, SUS)], Verdict.MALICIOUS, Basis.SIGNATURE, Action.QUARANTINE),
    ([f(SIG, SUS)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([f(ML, MAL)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([f(ML, SUS)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([f(HEUR, MAL)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([f(HEUR, SUS)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    # two of one kind do not corroborate each other
    ([f(HEUR, MAL, "h1"), f(HEUR, MAL, "h2")], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([f(ML, MAL, "m1"), f(ML, SUS, "m2")], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    # a malicious weak signal corroborated by another kind: malicious, but still only ask
    ([f(ML, MAL), f(HEUR, SUS)], Verdict.MALICIOUS, Basis.CORROBORATED, Action.ASK),
    ([f(HEUR, MAL), f(ML, SUS)], Verdict.MALICIOUS, Basis.CORROBORATED, Action.ASK),
    ([f(ML, MAL), f(SIG, SUS)], Verdict.MALICIOUS, Basis.CORROBORATED, Action.ASK),
    # two suspicious weak signals of different kinds stay suspicious
    ([f(ML, SUS), f(HEUR, SUS)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    # info never makes a threat
    ([f(SIG, INFO)], Verdict.CLEAN, Basis.NONE, Action.NONE),
    ([f(ML, INFO), f(HEUR, INFO)], Verdict.CLEAN, Basis.NONE, Action.NONE),
    ([f(ML, MAL), f(HEUR, INFO)], Verdict.SUSPICIOUS, Basis.WEAK, Action.ASK),
    ([], Verdict.CLEAN, Basis.NONE, Action.NONE),
]


@pytest.mark.parametrize(("findings", "verdict", "basis", "action"), TABLE)
def test_verdict_table(
    findings: list[Finding], verdict: Verdict, basis: Basis, action: Action
) -> None:
    d = decide(*findings)
    assert (d.verdict, d.basis, d.action) == (verdict, basis, action)
    assert d.explanation, "every decision explains itself"


def test_incomplete_and_error_pass_through_when_nothing_found() -> None:
    for scanned in (Verdict.INCOMPLETE, Verdict.ERROR):
        d = decide(verdict=scanned, problems=["max_scan_size: 400 MiB"])
        assert d.verdict is scanned and d.action is Action.REPORT
        assert any("max_scan_size" in line for line in d.explanation)
        assert "not known to be clean" in " ".join(d.explanation)


def test_threat_found_in_an_incomplete_scan_still_counts() -> None:
    d = decide(f(SIG, MAL), verdict=Verdict.INCOMPLETE, problems=["max_files reached"])
    assert d.verdict is Verdict.MALICIOUS and d.action is Action.QUARANTINE
    assert d.problems == ("max_files reached",)


def test_scanner_verdict_is_recomputed_from_findings() -> None:
    # the decision engine, not the scanner, decides: no counted finding -> clean
    assert decide(f(SIG, INFO), verdict=Verdict.MALICIOUS).verdict is Verdict.CLEAN


# --- policy -----------------------------------------------------------------------------------


def test_policy_report_only() -> None:
    engine = DecisionEngine(Policy(malicious=Action.REPORT, suspicious=Action.REPORT))
    d = decide(f(SIG, MAL), engine=engine)
    assert d.verdict is Verdict.MALICIOUS and d.action is Action.REPORT
    assert "your policy for malicious files is report" in d.action_reason


def test_quarantine_on_weak_signals_needs_the_guard_off() -> None:
    strict = DecisionEngine(Policy(suspicious=Action.QUARANTINE))
    d = decide(f(ML, MAL), engine=strict)
    assert d.action is Action.ASK
    assert "only on weak signals (ml)" in d.action_reason
    assert "signature-grade" in d.action_reason

    loose = DecisionEngine(
        Policy(suspicious=Action.QUARANTINE, quarantine_requires_signature=False)
    )
    assert decide(f(ML, MAL), engine=loose).action is Action.QUARANTINE
    assert decide(f(ML, MAL), f(HEUR, SUS), engine=loose).action is Action.QUARANTINE


def test_policy_from_settings() -> None:
    p = Policy.from_settings({"decision": {"malicious": "ask", "suspicious": "report"}})
    assert (p.malicious, p.suspicious, p.quarantine_requires_signature) == (
        Action.ASK,
        Action.REPORT,
        True,
    )
    assert Policy.from_settings({}) == Policy()
    with pytest.raises(ConfigError, match="report, ask or quarantine"):
        Policy.from_settings({"decision": {"malicious": "delete"}})
    with pytest.raises(ConfigError, match="report, ask or quarantine"):
        Policy.from_settings({"decision": {"suspicious": "none"}})
    with pytest.raises(ConfigError, match="unknown"):
        Policy.from_settings({"decision": {"malicous": "ask"}})
    with pytest.raises(ConfigError):
        Policy.from_settings({"decision": {"quarantine_requires_signature": "yes"}})


def test_strongest_action() -> None:
    assert strongest([]) is Action.NONE
    assert strongest([Action.REPORT, Action.QUARANTINE, Action.ASK]) is Action.QUARANTINE


# --- explanations -----------------------------------------------------------------------------


def test_explanation_names_detector_signature_and_action() -> None:
    d = decide(f(SIG, MAL, "EICAR-Test-File", "eicar"))
    text = "\n".join(d.explanation)
    assert "EICAR-Test-File: known-malware signature (the EICAR test-file check), malicious" in text
    assert "Verdict malicious: EICAR-Test-File matches a known-malware signature" in text
    assert "Action quarantine: your policy for malicious files is quarantine" in text
    assert d.detectors == ("eicar",)
    assert d.signatures == ("EICAR-Test-File",)
    as_dict = d.to_dict()
    assert as_dict["verdict"] == "malicious" and as_dict["action"] == "quarantine"
    assert as_dict["basis"] == "signature"
    assert as_dict["explanation"] == list(d.explanation)


def test_explanation_shows_scores_and_thresholds() -> None:
    ml = f(
        ML,
        MAL,
        "pe-gbt",
        "ml",
        score=0.93,
        details={"thresholds": {"suspicious": 0.5, "malicious": 0.9}, "junk": "x"},
    )
    d = decide(ml)
    text = "\n".join(d.explanation)
    assert (
        "pe-gbt: machine-learning score (the machine-learning model), malicious, score 0.93" in text
    )
    assert "(thresholds: malicious 0.90, suspicious 0.50)" in text
    assert "Verdict suspicious: one ml finding" in text
    assert "Action ask:" in text and "weak signals (ml)" in text
    ev = d.evidence[0]
    assert ev.thresholds == {"suspicious": 0.5, "malicious": 0.9}
    assert d.to_dict()["evidence"][0]["thresholds"] == {"suspicious": 0.5, "malicious": 0.9}
    assert d.to_dict()["evidence"][0]["score"] == 0.93


def test_explanation_of_corroboration() -> None:
    d = decide(f(ML, MAL, "model"), f(HEUR, SUS, "packed-upx"))
    text = "\n".join(d.explanation)
    assert "ml finding model rates it malicious and independent evidence (heuristic)" in text
    assert set(d.detectors) == {"ml", "heuristic"}
    assert d.signatures == ()
    assert d.rules == ("model", "packed-upx")


def test_info_findings_are_listed_as_ignored() -> None:
    d = decide(f(SIG, INFO, "has-macros"))
    assert d.verdict is Verdict.CLEAN
    assert "has-macros" in d.explanation[0] and "ignored: informational only" in d.explanation[0]
    assert d.detectors == ()


# --- exclusions -------------------------------------------------------------------------------


def test_exclusion_by_path_glob() -> None:
    engine = DecisionEngine(exclusions=Exclusions(paths=("/home/u/Downloads/*",)))
    d = decide(f(SIG, MAL), engine=engine)
    assert (d.verdict, d.action, d.basis) == (Verdict.CLEAN, Action.NONE, Basis.EXCLUDED)
    assert d.excluded_by == "/home/u/Downloads/*"
    assert "excluded by your allowlist (/home/u/Downloads/*)" in d.explanation[0]
    assert all(not e.counted for e in d.evidence)


def test_exclusion_by_name_glob_and_member_path() -> None:
    by_name = DecisionEngine(exclusions=Exclusions(paths=("*.exe",)))
    assert decide(f(SIG, MAL), engine=by_name).basis is Basis.EXCLUDED
    member = ObjectResult("/data/a.zip!tools/nc.exe", Verdict.MALICIOUS, [f(SIG, MAL)])
    engine = DecisionEngine(exclusions=Exclusions(paths=("nc.exe",)))
    assert engine.decide(member, file_path="/data/a.zip").basis is Basis.EXCLUDED
    other = DecisionEngine(exclusions=Exclusions(paths=("/elsewhere/*",)))
    assert decide(f(SIG, MAL), engine=other).verdict is Verdict.MALICIOUS


def test_exclusion_by_sha256_is_case_insensitive() -> None:
    engine = DecisionEngine(exclusions=Exclusions(sha256=frozenset({SHA.upper()})))
    d = decide(f(SIG, MAL), engine=engine, sha256=SHA)
    assert d.verdict is Verdict.CLEAN and d.excluded_by == f"sha256:{SHA}"
    assert decide(f(SIG, MAL), engine=engine, sha256="b" * 64).verdict is Verdict.MALICIOUS


def test_exclusion_by_signature_name_ignores_only_that_finding() -> None:
    engine = DecisionEngine(exclusions=Exclusions(signatures=("PUA.*",)))
    d = decide(f(SIG, MAL, "PUA.Toolbar"), engine=engine)
    assert d.verdict is Verdict.CLEAN and d.action is Action.NONE
    assert "allowlisted signature name 'PUA.*'" in d.explanation[0]
    d2 = decide(f(SIG, MAL, "PUA.Toolbar"), f(HEUR, SUS, "odd"), engine=engine)
    assert d2.verdict is Verdict.SUSPICIOUS and d2.rules == ("odd",)
    # case-sensitive: pua.x is another name
    assert decide(f(SIG, MAL, "pua.x"), engine=engine).verdict is Verdict.MALICIOUS


def test_exclusions_from_settings_and_validation() -> None:
    ex = Exclusions.from_settings(
        {"exclusions": {"paths": ["~/builds/*"], "sha256": [SHA], "signatures": ["X"]}}
    )
    assert ex.paths[0].endswith("/builds/*") and not ex.paths[0].startswith("~")
    assert ex.sha256 == frozenset({SHA}) and ex.signatures == ("X",)
    with pytest.raises(ConfigError, match="SHA-256"):
        Exclusions(sha256=frozenset({"abc"}))
    with pytest.raises(ConfigError, match="list of strings"):
        Exclusions.from_settings({"exclusions": {"paths": "/tmp/*"}})
    with pytest.raises(ConfigError, match="unknown"):
        Exclusions.from_settings({"exclusions": {"hashes": []}})
    engine = DecisionEngine.from_settings({"exclusions": {"signatures": ["EICAR-Test-File"]}})
    assert decide(f(SIG, MAL, "EICAR-Test-File"), engine=engine).verdict is Verdict.CLEAN


# --- whole files ------------------------------------------------------------------------------


def test_decide_report_takes_the_strongest_action_for_the_file() -> None:
    report = FileReport(
        "/data/a.zip",
        Verdict.MALICIOUS,
        [
            ObjectResult("/data/a.zip!readme.js", Verdict.SUSPICIOUS, [f(HEUR, SUS, "odd-js")]),
            ObjectResult("/data/a.zip!x.com", Verdict.MALICIOUS, [f(SIG, MAL, "EICAR")]),
        ],
        sha256=SHA,
        size=300,
    )
    fd = DecisionEngine().decide_report(report)
    assert fd.verdict is Verdict.MALICIOUS and fd.action is Action.QUARANTINE
    assert fd.deciding is not None and fd.deciding.object_path == "/data/a.zip!x.com"
    assert fd.explanation[0] == "/data/a.zip!readme.js:"
    assert any(line.startswith("  Verdict malicious") for line in fd.explanation)
    assert fd.to_dict()["decisions"][1]["signatures"] == ["EICAR"]


def test_decide_report_without_objects_uses_the_file_verdict() -> None:
    fd = DecisionEngine().decide_report(FileReport("/x", Verdict.ERROR))
    assert fd.verdict is Verdict.ERROR and fd.action is Action.REPORT
    clean = DecisionEngine().decide_report(FileReport("/y", Verdict.CLEAN))
    assert clean.decisions == () and clean.verdict is Verdict.CLEAN
    assert clean.action is Action.NONE


def test_why_not_quarantined_is_explained() -> None:
    d = decide(f(SIG, SUS, "Generic.Suspicious"))
    assert d.action is Action.ASK
    assert "evidence short of a malicious signature (signature)" in d.action_reason
    d = decide(f(HEUR, MAL), f(ML, SUS))
    assert d.verdict is Verdict.MALICIOUS and d.action is Action.ASK
    assert "your policy for malicious files is quarantine, but" in d.action_reason
    assert "weak signals (heuristic, ml)" in d.action_reason
