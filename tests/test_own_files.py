"""Files Aegis writes outside its folders (the shield's decoys, the vault's restore temp file)
are recognised in one place; decoys are never counted or reported by a scan, and a file that
only borrows a decoy's name is scanned like any other."""

from __future__ import annotations

from pathlib import Path

from aegis_engine.monitor.canary import CanarySet
from aegis_engine.own_files import decoy_bytes, is_decoy
from aegis_engine.scanning.walk import FileEntry, walk

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def _files(root: Path) -> list[str]:
    return sorted(Path(i.path).name for i in walk([str(root)]) if isinstance(i, FileEntry))


def test_planted_decoys_are_not_walked(tmp_path: Path) -> None:
    docs = tmp_path / "Documents"
    docs.mkdir()
    (docs / "letter.txt").write_text("hello")
    canaries = CanarySet(tmp_path / "canaries.json")
    planted = canaries.plant(str(docs))
    assert planted is not None and Path(planted).exists()
    assert is_decoy(planted)
    assert _files(docs) == ["letter.txt"], "the decoy is neither counted nor scanned"


def test_a_file_borrowing_a_decoy_name_is_scanned(tmp_path: Path) -> None:
    fake = tmp_path / ".~invoice-abcdef.pdf"
    fake.write_bytes(EICAR)
    assert not is_decoy(str(fake))
    changed = tmp_path / ".~budget-123456.pdf"
    changed.write_bytes(decoy_bytes("budget") + b"more")
    assert not is_decoy(str(changed))
    assert _files(tmp_path) == [".~budget-123456.pdf", ".~invoice-abcdef.pdf"]
