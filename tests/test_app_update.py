"""The program's own updates end to end: ``aegis-repo release --app`` publishes two builds of a
small bundle folder into a real TUF repository, a real HTTPS server on 127.0.0.1 (trustme)
serves it, the client stages the new build by delta beside the installed one, refuses a
tampered target, and the real launcher script switches to the new build at the next start and
goes back to the previous one when the new build never confirms it started."""

from __future__ import annotations

import functools
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis_engine.errors import UpdateRefused
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy.consent import ConsentStore
from aegis_engine.repo.app_publish import release_app
from aegis_engine.repo.tufrepo import RepoError
from aegis_engine.updates.app_bundle import bundle_tar, unpack_bundle
from aegis_engine.updates.app_index import AppIndex, app_target
from aegis_engine.updates.app_layout import AppLayout
from aegis_engine.updates.app_service import app_status, check_for_app_update
from aegis_engine.updates.index import sha256_hex
from aegis_gui.updates import app_update_line
from tests.conftest import run_cli
from tests.https_server import HTTPSServer, drop_halfway_once
from tests.update_support import Repo, make_repo, serving

ROOT = Path(__file__).resolve().parent.parent
LINUX = ROOT / "packaging" / "linux"
PLATFORM = "linux-testarch"

# The stand-in for the frozen program: confirms its start the way the real entry point does
# (packaging/entry/aegis_main.py), unless the bundle holds a file named "broken".
PROGRAM = """#!{python}
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
if (here / "broken").exists():
    sys.exit(70)
from aegis_engine.updates.app_layout import confirm_started

confirm_started(here)
print(Path(sys.argv[0]).name, (here / "VERSION").read_text().strip(), " ".join(sys.argv[1:]))
"""


def make_bundle(folder: Path, version: str, *, code_line: str = "x = 1", broken: bool = False):  # type: ignore[no-untyped-def]
    """A bundle folder like dist/aegis/: the executable, the tray name linked to it, a
    library of random bytes (compresses badly, like real ones) and some code."""
    folder.mkdir(parents=True)
    exe = folder / "aegis"
    exe.write_text(PROGRAM.format(python=sys.executable))
    exe.chmod(0o755)
    (folder / "aegis-tray").symlink_to("aegis")
    (folder / "VERSION").write_text(version + "\n")
    internal = folder / "_internal"
    (internal / f"aegis-{version}.dist-info").mkdir(parents=True)
    (internal / f"aegis-{version}.dist-info" / "METADATA").write_text(f"Version: {version}\n")
    rng = __import__("random").Random(7)  # the same library bytes in every build
    (internal / "libfake.so").write_bytes(bytes(rng.getrandbits(8) for _ in range(300_000)))
    (internal / "code.py").write_text("# program code\n" * 200 + code_line + "\n")
    if broken:
        (folder / "broken").write_text("this build crashes at start\n")
    return folder


def install(lib: Path, bundle: Path, version: str) -> AppLayout:
    """Install ``bundle`` with the real install.sh, from a folder laid out like the unpacked
    tar.gz (packaging/build-linux.sh), into the prefix ``lib``/../.. (lib = PREFIX/lib/aegis)."""
    prefix = lib.parent.parent
    stage = prefix.parent / f"stage-{version}"
    shutil.copytree(bundle, stage / "aegis", symlinks=True)
    (stage / "VERSION").write_text(version + "\n")
    for name in ("install.sh", "uninstall.sh", "aegis-launcher.sh"):
        shutil.copy2(LINUX / name, stage / name)
    share = stage / "share"
    for sub, files in {
        "applications": ("aegis-tray.desktop", "aegis-scan.desktop"),
        "metainfo": ("org.aegis.Aegis.metainfo.xml",),
        "systemd": ("aegis-monitor.service",),
    }.items():
        (share / sub).mkdir(parents=True)
        for f in files:
            shutil.copy2(LINUX / f, share / sub / f)
    (share / "icons" / "hicolor").mkdir(parents=True)
    (stage / "README.md").write_text("Aegis\n")
    home = prefix.parent / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
    }
    proc = subprocess.run(
        ["sh", str(stage / "install.sh"), "--prefix", str(prefix), "--no-file-manager"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (prefix / "bin" / "aegis").resolve() == (lib / "aegis").resolve()
    return AppLayout(lib)


def launch(lib: Path, name: str = "aegis", *args: str) -> subprocess.CompletedProcess[str]:
    """Start the program as a user does: PREFIX/bin/NAME, a link to the launcher."""
    return subprocess.run(
        [str(lib.parent.parent / "bin" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def published(tmp_path: Path) -> Repo:
    repo = make_repo(tmp_path)
    b1 = make_bundle(tmp_path / "build1", "1.0.0")
    b2 = make_bundle(tmp_path / "build2", "2.0.0", code_line="x = 2  # the one-line fix")
    r1 = release_app(repo.root, repo.keys, b1, platform=PLATFORM)
    assert (r1.version, r1.deltas) == ("1.0.0", {})
    r2 = release_app(repo.root, repo.keys, b2, platform=PLATFORM)
    assert r2.version == "2.0.0" and set(r2.deltas) == {"1.0.0"}
    assert r2.deltas["1.0.0"] < r2.full_bytes / 10, "a one-line change is a small delta"
    return repo


@pytest.fixture
def server(tmp_path: Path, published: Repo, aegis_paths: AegisPaths) -> Iterator[HTTPSServer]:
    with serving(tmp_path, published, aegis_paths) as srv:
        yield srv


@pytest.fixture
def layout(tmp_path: Path) -> AppLayout:
    return install(
        tmp_path / "prefix" / "lib" / "aegis", make_bundle(tmp_path / "b0", "1.0.0"), "1.0.0"
    )


def check(paths: AegisPaths, srv: HTTPSServer, repo: Repo, layout: AppLayout):  # type: ignore[no-untyped-def]
    return check_for_app_update(
        paths,
        server=srv.url,
        root_file=repo.root_json,
        app_dir=layout.lib,
        platform=PLATFORM,
    )


def app_index(repo: Repo) -> AppIndex:
    """The latest signed app index of PLATFORM."""
    info = repo.tuf.load("targets").signed.targets[app_target(PLATFORM)]
    path = repo.root / "targets" / f"{info.hashes['sha256']}.{app_target(PLATFORM)}"
    return AppIndex.from_json(path.read_bytes())


def tree(folder: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes() + (b"+x" if os.access(p, os.X_OK) else b"")
    return out


# -- staging --------------------------------------------------------------------------------


def test_new_build_staged_by_delta_and_switched_in_at_next_start(
    server: HTTPSServer, published: Repo, layout: AppLayout, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    index = app_index(published)
    result = check(aegis_paths, server, published, layout)
    assert result.result == "staged", result.reason
    assert (result.version, result.installed_version, result.delta) == ("2.0.0", "1.0.0", True)
    assert 0 < result.bytes_downloaded < index.blob_length / 5, "a delta, not the full bundle"
    assert any(p.startswith("/targets/app/deltas/") for p in server.stats.requests)
    assert not any(p == f"/targets/{index.blob_path}" for p in server.stats.requests)
    assert layout.staged_version == "2.0.0" and layout.installed_version == "1.0.0"
    assert tree(layout.version_dir("2.0.0")) == tree(tmp_path / "build2")
    assert app_status(layout.lib) == {
        "installed_at": str(layout.lib),
        "app_version": "1.0.0",
        "previous_version": None,
        "staged_version": "2.0.0",
        "start_pending": None,
        "failed_versions": [],
    }
    again = check(aegis_paths, server, published, layout)
    assert again.result == "staged" and "starts next time" in again.reason

    first = launch(layout.lib, "aegis", "--version")  # the next start: the new build
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["aegis", "2.0.0", "--version"]
    assert (layout.installed_version, layout.previous_version) == ("2.0.0", "1.0.0")
    assert layout.staged_version is None
    assert not (layout.lib / "start-pending").exists(), "the new build confirmed its start"
    tray = launch(layout.lib, "aegis-tray", "--show")
    assert tray.stdout.split() == ["aegis-tray", "2.0.0", "--show"]
    assert layout.installed_version == "2.0.0"
    assert check(aegis_paths, server, published, layout).result == "current"


def test_full_bundle_when_the_installed_build_differs(
    server: HTTPSServer, published: Repo, layout: AppLayout, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    (layout.version_dir("1.0.0") / "_internal" / "code.py").write_text("changed by hand\n")
    result = check(aegis_paths, server, published, layout)
    assert result.result == "staged" and not result.delta, result.reason
    index = app_index(published)
    assert f"/targets/{index.blob_path}" in server.stats.requests
    assert result.bytes_downloaded >= index.blob_length
    assert tree(layout.version_dir("2.0.0")) == tree(tmp_path / "build2")


@pytest.mark.parametrize("what", ["delta", "full"])
def test_tampered_target_refused_and_nothing_staged(
    what: str,
    server: HTTPSServer,
    published: Repo,
    layout: AppLayout,
    aegis_paths: AegisPaths,
) -> None:
    index = app_index(published)
    if what == "delta":
        (target,) = (published.root / "targets" / "app" / "deltas").iterdir()
    else:
        target = published.root / "targets" / index.blob_path
        (layout.version_dir("1.0.0") / "_internal" / "code.py").write_text("not the base\n")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    result = check(aegis_paths, server, published, layout)
    assert result.result == "refused", result.reason
    assert "does not match its signed hash" in result.reason
    assert layout.staged_version is None
    assert sorted(p.name for p in layout.versions.iterdir()) == ["1.0.0"]
    assert launch(layout.lib, "aegis").stdout.split() == ["aegis", "1.0.0"]


def test_new_build_that_does_not_start_is_replaced_by_the_previous(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    repo = make_repo(tmp_path)
    release_app(repo.root, repo.keys, make_bundle(tmp_path / "b1", "1.0.0"), platform=PLATFORM)
    broken = make_bundle(tmp_path / "b2", "2.0.0", broken=True)
    release_app(repo.root, repo.keys, broken, platform=PLATFORM)
    layout = install(tmp_path / "prefix" / "lib" / "aegis", tmp_path / "b1", "1.0.0")
    with serving(tmp_path, repo, aegis_paths) as srv:
        assert check(aegis_paths, srv, repo, layout).result == "staged"

        crashed = launch(layout.lib)  # the new build starts and dies before confirming
        assert crashed.returncode == 70
        assert layout.installed_version == "2.0.0"
        assert (layout.lib / "start-pending").read_text().split()[0] == "2.0.0"

        back = launch(layout.lib, "aegis", "scan")  # the next start goes back
        assert back.returncode == 0, back.stderr
        assert back.stdout.split() == ["aegis", "1.0.0", "scan"]
        assert "version 2.0.0 did not start; went back to version 1.0.0" in back.stderr
        assert layout.installed_version == "1.0.0" and layout.previous_version is None
        assert layout.failed_versions() == ["2.0.0"]
        assert not layout.version_dir("2.0.0").exists()
        assert not (layout.lib / "start-pending").exists()

        again = check(aegis_paths, srv, repo, layout)  # never staged again
        assert again.result == "current" and "failed to start" in again.reason
        assert layout.staged_version is None
        assert launch(layout.lib).stdout.split() == ["aegis", "1.0.0"]


def test_a_start_still_running_is_not_taken_for_a_failure(tmp_path: Path) -> None:
    layout = install(
        tmp_path / "prefix" / "lib" / "aegis", make_bundle(tmp_path / "b1", "1.0.0"), "1.0.0"
    )
    shutil.copytree(make_bundle(tmp_path / "b2", "2.0.0"), layout.versions / "2.0.0", symlinks=True)
    (layout.lib / "staged").symlink_to("versions/2.0.0")
    assert launch(layout.lib).stdout.split() == ["aegis", "2.0.0"]
    # a marker whose process still runs (this test's): another start at that moment keeps it
    (layout.lib / "start-pending").write_text(f"2.0.0 {os.getpid()}\n")
    assert launch(layout.lib).stdout.split() == ["aegis", "2.0.0"]
    assert layout.installed_version == "2.0.0" and layout.failed_versions() == []


def test_install_replaces_an_older_layout_and_a_reinstall_resets_the_switch(
    tmp_path: Path,
) -> None:
    lib = tmp_path / "prefix" / "lib" / "aegis"
    shutil.copytree(make_bundle(tmp_path / "b0", "0.9.0"), lib, symlinks=True)  # pre-update layout
    layout = install(lib, make_bundle(tmp_path / "b1", "1.0.0"), "1.0.0")
    assert sorted(p.name for p in layout.versions.iterdir()) == ["1.0.0"]
    assert launch(lib, "aegis-tray").stdout.split() == ["aegis-tray", "1.0.0"]
    shutil.copytree(tmp_path / "b1", layout.versions / "1.5.0", symlinks=True)
    (lib / "staged").symlink_to("versions/1.5.0")
    install(lib, make_bundle(tmp_path / "b2", "2.0.0"), "2.0.0")
    assert sorted(p.name for p in layout.versions.iterdir()) == ["2.0.0"]
    assert layout.staged_version is None and layout.installed_version == "2.0.0"
    assert launch(lib).stdout.split() == ["aegis", "2.0.0"]


# -- the command line, consent, the publisher ------------------------------------------------


def test_cli_update_app(
    server: HTTPSServer, published: Repo, layout: AppLayout, aegis_paths: AegisPaths
) -> None:
    common = ["--server", server.url, "--root", str(published.root_json)]
    proc = run_cli("update", "--app", *common, "--json")  # a source tree: not available
    assert proc.returncode == 2 and json.loads(proc.stdout)["result"] == "unavailable"
    assert server.stats.connections == 0
    # the platform is this machine's: publish for it too
    release_app(published.root, published.keys, layout.version_dir("1.0.0"), version="1.0.1")
    proc = run_cli("update", "--app", "--app-dir", str(layout.lib), *common)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "New version 1.0.1 staged" in proc.stdout
    assert layout.staged_version == "1.0.1"


def test_no_consent_no_socket(
    server: HTTPSServer, published: Repo, layout: AppLayout, aegis_paths: AegisPaths
) -> None:
    ConsentStore.for_paths(aegis_paths).revoke("update-checks")
    result = check(aegis_paths, server, published, layout)
    assert result.result == "failed" and "update-checks" in result.reason
    assert server.stats.connections == 0 and layout.staged_version is None


def test_publisher_refuses_an_older_version_and_keeps_the_content_index(
    published: Repo, tmp_path: Path
) -> None:
    with pytest.raises(RepoError, match="not newer"):
        release_app(
            published.root,
            published.keys,
            make_bundle(tmp_path / "old", "1.5.0"),
            platform=PLATFORM,
        )
    content = published.content("c1")
    published.release(content)  # a content release keeps the app index, and the reverse
    release_app(
        published.root, published.keys, make_bundle(tmp_path / "v3", "3.0.0"), platform=PLATFORM
    )
    names = published.tuf.load("targets").signed.targets
    assert set(names) == {"index.json", app_target(PLATFORM)}


def test_bundle_tar_is_deterministic_and_unpacking_refuses_escapes(tmp_path: Path) -> None:
    a = make_bundle(tmp_path / "a", "1.0.0")
    b = tmp_path / "b"
    shutil.copytree(a, b, symlinks=True)
    os.utime(b / "VERSION", (1, 1))
    assert sha256_hex(bundle_tar(a)) == sha256_hex(bundle_tar(b)), "times do not count"
    unpack_bundle(bundle_tar(a), tmp_path / "out")
    assert tree(tmp_path / "out") == tree(a)
    for name, kind, link in [("../evil", tarfile.REGTYPE, ""), ("x", tarfile.SYMTYPE, "/etc")]:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, link
            tar.addfile(info, io.BytesIO(b""))
        with pytest.raises(UpdateRefused):
            unpack_bundle(buf.getvalue(), tmp_path / f"bad-{kind!r}")
    assert not (tmp_path / "evil").exists()


# -- the background scheduler ------------------------------------------------------------------


def test_scheduler_stages_an_app_update_and_asks_nothing_without_consent(
    server: HTTPSServer, published: Repo, layout: AppLayout, aegis_paths: AegisPaths
) -> None:
    from aegis_engine.updates.scheduler import UpdateScheduler

    settings = aegis_paths.settings_file.read_text()
    aegis_paths.settings_file.write_text(
        settings + f'server = "{server.url}"\nroot = "{published.root_json}"\napp = "check"\n'
    )
    seen: list[object] = []
    sched = UpdateScheduler(
        aegis_paths,
        on_result=seen.append,
        app_dir=layout.lib,
        check_app=functools.partial(check_for_app_update, platform=PLATFORM),
    )
    checks = sched.run_checks()  # app = "check": found, not downloaded
    assert checks is not None and checks.app is not None
    assert (checks.app.result, checks.app.version) == ("available", "2.0.0"), checks.app.reason
    assert layout.staged_version is None
    assert not any(p.startswith("/targets/app/") for p in server.stats.requests)
    assert sched.run_checks().app is None, "the program's check has its own, longer interval"  # type: ignore[union-attr]

    aegis_paths.settings_file.write_text(settings + f'server = "{server.url}"\n'
                                         f'root = "{published.root_json}"\n')
    sched.app_stamp.unlink()  # due again; app = "stage" (the default)
    checks = sched.run_checks()
    assert checks is not None and checks.app is not None
    assert checks.app.result == "staged" and checks.app.delta, checks.app.reason
    assert layout.staged_version == "2.0.0"
    assert [getattr(r, "result", None) for r in seen][-2:] == ["current", "staged"]
    assert app_update_line(checks.app) == "Aegis 2.0.0 is ready: restart Aegis to apply it."

    ConsentStore.for_paths(aegis_paths).revoke("update-checks")
    sched.app_stamp.unlink()
    before = server.stats.connections
    assert sched.run_checks() is None and sched.run_app_check() is None
    assert server.stats.connections == before, "checks off: not one connection"


# -- an interrupted download, resumed ----------------------------------------------------------


@pytest.mark.parametrize("tampered", [False, True])
def test_interrupted_full_download_resumes_and_is_checked_whole(
    tampered: bool,
    server: HTTPSServer,
    published: Repo,
    layout: AppLayout,
    aegis_paths: AegisPaths,
    tmp_path: Path,
) -> None:
    (layout.version_dir("1.0.0") / "_internal" / "code.py").write_text("changed by hand\n")
    index = app_index(published)
    blob = published.root / "targets" / index.blob_path
    cut = drop_halfway_once(published.root)
    server.routes[f"/targets/{index.blob_path}"] = cut

    first = check(aegis_paths, server, published, layout)
    assert first.result == "failed", first.reason
    partial = aegis_paths.cache_dir / "app-update" / f"{index.bundle.blob_sha256}.partial"
    assert 0 < partial.stat().st_size < index.blob_length
    assert layout.staged_version is None
    if tampered:  # the rest of the file changes on the server: the whole must not match
        data = bytearray(blob.read_bytes())
        data[-100] ^= 0xFF
        blob.write_bytes(bytes(data))

    second = check(aegis_paths, server, published, layout)
    assert any(r.startswith("bytes=") and r != "bytes=0-" for r in server.stats.ranges)
    assert 0 < cut.ranged < index.blob_length, "only the rest was sent again"
    if tampered:
        assert second.result == "refused", second.reason
        assert "does not match its signed hash" in second.reason
        assert layout.staged_version is None and not partial.exists()
        assert sorted(p.name for p in layout.versions.iterdir()) == ["1.0.0"]
        return
    assert second.result == "staged" and not second.delta, second.reason
    assert second.bytes_downloaded < index.blob_length
    assert not partial.exists()
    assert tree(layout.version_dir("2.0.0")) == tree(tmp_path / "build2")


# -- a delta pack, file by file ----------------------------------------------------------------


def test_delta_pack_rebuilds_the_new_bundle_file_by_file(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    """Changed libraries (patched), a moved file (copied from its old place), a new and a
    removed file, a new link and a changed mode: the staged build is the new one, byte for
    byte, and the pack holds patches, not the libraries."""
    repo = make_repo(tmp_path)
    b1 = make_bundle(tmp_path / "b1", "1.0.0")
    rng = random.Random(11)
    big = bytes(rng.getrandbits(8) for _ in range(400_000))
    (b1 / "_internal" / "libbig.so").write_bytes(big)
    (b1 / "_internal" / "old-place.dat").write_bytes(bytes(rng.getrandbits(8) for _ in range(5000)))
    (b1 / "_internal" / "gone.txt").write_text("removed in 2.0.0\n")
    b2 = tmp_path / "b2"
    shutil.copytree(b1, b2, symlinks=True)
    shutil.rmtree(b2 / "_internal" / "aegis-1.0.0.dist-info")
    (b2 / "_internal" / "aegis-2.0.0.dist-info").mkdir()
    (b2 / "_internal" / "aegis-2.0.0.dist-info" / "METADATA").write_text("Version: 2.0.0\n")
    (b2 / "VERSION").write_text("2.0.0\n")
    (b2 / "_internal" / "libbig.so").write_bytes(big[:1000] + b"patched!" + big[1008:])
    (b2 / "_internal" / "libfake.so").write_bytes(
        (b1 / "_internal" / "libfake.so").read_bytes() + b"appended"
    )
    (b2 / "_internal" / "gone.txt").unlink()
    (b2 / "_internal" / "sub").mkdir()
    (b2 / "_internal" / "old-place.dat").rename(b2 / "_internal" / "sub" / "new-place.dat")
    (b2 / "_internal" / "new.txt").write_text("new in 2.0.0\n")
    (b2 / "_internal" / "tool").symlink_to("../aegis")
    (b2 / "_internal" / "code.py").chmod(0o755)
    release_app(repo.root, repo.keys, b1, platform=PLATFORM)
    report = release_app(repo.root, repo.keys, b2, platform=PLATFORM)
    assert report.deltas["1.0.0"] < 20_000 < report.full_bytes, report
    layout = install(tmp_path / "prefix" / "lib" / "aegis", b1, "1.0.0")
    with serving(tmp_path, repo, aegis_paths) as srv:
        result = check(aegis_paths, srv, repo, layout)
    assert result.result == "staged" and result.delta, result.reason
    assert tree(layout.version_dir("2.0.0")) == tree(b2)
    assert bundle_tar(layout.version_dir("2.0.0")) == bundle_tar(b2)
    assert launch(layout.lib).stdout.split() == ["aegis", "2.0.0"]
