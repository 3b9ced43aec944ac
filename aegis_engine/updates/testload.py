"""Test-load a content folder before it is switched in: rules compile, hash lists parse, the
model loads and scores a sample, behaviour rules parse. Any problem refuses the version."""

from __future__ import annotations

from pathlib import Path

from ..errors import AegisError, ContentError

__all__ = ["test_load"]


def test_load(root: Path) -> None:
    problems: list[str] = []
    rules = root / "rules"
    if rules.is_dir():
        import yara

        for p in sorted(rules.rglob("*")):
            if p.is_file() and p.suffix.lower() in (".yar", ".yara"):
                try:
                    yara.compile(filepath=str(p))
                except yara.Error as exc:
                    problems.append(f"{p.relative_to(root)}: {exc}")
    hashes = root / "hashes"
    if hashes.is_dir():
        from ..detectors.hashes import HashTable, read_hash_file

        for p in sorted(hashes.iterdir()):
            if p.is_file():

                def note(message: str, name: str = p.name) -> None:
                    problems.append(f"{name}: {message}")

                try:
                    read_hash_file(p, HashTable(), note)
                except AegisError as exc:
                    problems.append(f"{p.name}: {exc}")
    model = root / "model"
    if model.is_dir():
        from ..ml.detector import MLDetector
        from ..ml.features import FEATURE_NAMES

        try:
            det = MLDetector.from_model_dir(model, problems.append)
            scores = det.score_vectors([[0.0] * len(FEATURE_NAMES)])
            if scores is None or not all(0.0 <= s <= 1.0 for s in scores):
                problems.append("the model does not score a sample")
        except (AegisError, ValueError) as exc:
            problems.append(f"model: {exc}")
    behaviour = root / "behaviour_rules.toml"
    if behaviour.is_file():
        from ..monitor.behaviour import BehaviourRules

        try:
            BehaviourRules.load(behaviour)
        except AegisError as exc:
            problems.append(f"behaviour rules: {exc}")
    if problems:
        raise ContentError("the new content does not load: " + "; ".join(problems[:5]))
