"""Shared fixtures. Every test runs with AEGIS_HOME in a temp folder: nothing touches the
real profile, and no test depends on another's cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_engine.paths import AegisPaths

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMAV_TESTFILES = Path("/usr/share/clamav-testfiles")


@pytest.fixture(autouse=True)
def aegis_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("aegis-home")
    monkeypatch.setenv("AEGIS_HOME", str(home))
    return home


@pytest.fixture
def aegis_paths(aegis_home: Path) -> AegisPaths:
    return AegisPaths.under(aegis_home)


@pytest.fixture
def eicar() -> bytes:
    return EICAR


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``aegis`` as a real process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "aegis_engine.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
