"""Tests of actors.nas: confinement, source checks, staging and the atomic commit, on real files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pykka
import pytest

from actors.nas import (
    PREVIOUS_NAME,
    Nas,
    NASActor,
    Staging,
    check_output_dir,
    check_source,
    commit,
    resolve_task_path,
)
from actors.nas_commit import make_dirs
from platesift.artifacts import (
    RejectionRuns,
    build_manifest,
    manifest_json,
    thumb_name,
    verify_artifact_dir,
)
from platesift.errors import (
    InvalidInputError,
    NasUnavailableError,
    OutputError,
    PathNotAllowedError,
)
from tests.conftest import FailingDisk

TIMEOUT = 10.0
VIDEO = b"\x00\x00\x00\x18ftypmp42 fake video"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    nas = tmp_path / "nas"
    (nas / "cam1").mkdir(parents=True)
    (nas / "cam1" / "a.mp4").write_bytes(VIDEO)
    return nas


def _fields(task_id: str = "t-1") -> dict[str, Any]:
    return build_manifest(
        task_id=task_id,
        source={"path": "cam1/a.mp4", "size": len(VIDEO)},
        video={"width": 1920, "height": 1080, "fps": 25.0, "frame_count": 3, "rotation": 0},
        analysis={"width": 480, "height": 270},
        parameters={"motion": {"threshold": 18.0}},
        proposer={"backend": "none", "model": None},
        counts={"decoded": 3, "kept": 1, "rejected": {"static": 2}, "regions": 2},
    )


def _stage(
    scratch: Path, task_id: str = "t-1", thumbs: tuple[int, ...] = (0, 1), tag: bytes = b""
) -> Staging:
    staging = Staging(scratch, task_id)
    runs = RejectionRuns()
    for index in (0, 1):
        line = runs.add(index, "static")
        assert line is None
    last = runs.finish()
    assert last is not None
    staging.append_rejection(last)
    staging.append_frame('{"frame":2,"regions":[]}' + tag.decode())
    staging.append_track('{"track":1}' + tag.decode())
    for region in thumbs:
        staging.write_thumb(thumb_name(2, region), b"\xff\xd8jpeg" + bytes([region]) + tag)
    staging.write_heavy_task(manifest_json({"type": "HEAVY_PROCESS", "tag": tag.decode()}))
    return staging


def _tree(path: Path) -> dict[str, bytes]:
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


# --- confinement ---------------------------------------------------------------------------------


def test_resolve_good_relative_path(root: Path) -> None:
    assert resolve_task_path(root, "cam1/a.mp4") == root / "cam1" / "a.mp4"
    assert resolve_task_path(root, "./cam1//a.mp4") == root / "cam1" / "a.mp4"
    assert resolve_task_path(root, "cam2/new/out") == root / "cam2" / "new" / "out"


def test_resolve_absolute_inside_root_is_accepted(root: Path) -> None:
    assert resolve_task_path(root, str(root / "cam1" / "a.mp4")) == root / "cam1" / "a.mp4"


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("cam1/a\0.mp4", "NUL"),
        ("../secret.mp4", "'..'"),
        ("cam1/../../secret.mp4", "'..'"),
        ("cam1/..", "'..'"),
        ("/etc/passwd", "outside the NAS root"),
        (".", "NAS root itself"),
        ("cam1/" + "v" * 300 + ".mp4", "too long"),
        ("cam1/" + "é" * 130 + ".mp4", "too long"),  # 130 characters, 260 bytes
        ("/".join(["d" * 200] * 25) + "/a.mp4", "too long"),
    ],
)
def test_resolve_rejects(root: Path, rel: str, message: str) -> None:
    with pytest.raises(PathNotAllowedError, match=message) as info:
        resolve_task_path(root, rel)
    assert info.value.permanent
    assert "\n" not in str(info.value)


def test_resolve_rejects_symlink_escape(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.mp4").write_bytes(b"x")
    (root / "link").symlink_to(outside)
    (root / "cam1" / "file-link.mp4").symlink_to(outside / "b.mp4")
    with pytest.raises(PathNotAllowedError, match=r"link/b\.mp4"):
        resolve_task_path(root, "link/b.mp4")
    with pytest.raises(PathNotAllowedError, match="outside"):
        resolve_task_path(root, "cam1/file-link.mp4")
    with pytest.raises(PathNotAllowedError):
        resolve_task_path(root, "link/not-yet-created/out")


def test_a_legal_255_byte_name_is_accepted(root: Path) -> None:
    name = "v" * 251 + ".mp4"
    (root / "cam1" / name).write_bytes(VIDEO)
    assert resolve_task_path(root, f"cam1/{name}") == root / "cam1" / name


def test_resolve_follows_symlinks_that_stay_inside(root: Path) -> None:
    (root / "alias").symlink_to(root / "cam1")
    assert resolve_task_path(root, "alias/a.mp4") == root / "cam1" / "a.mp4"


def test_resolve_with_missing_root_is_transient(tmp_path: Path) -> None:
    with pytest.raises(NasUnavailableError, match="not reachable") as info:
        resolve_task_path(tmp_path / "unmounted", "cam1/a.mp4")
    assert not info.value.permanent
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NasUnavailableError, match="not a directory"):
        resolve_task_path(tmp_path / "file", "cam1/a.mp4")


def test_bad_syntax_is_permanent_even_when_the_root_is_missing(tmp_path: Path) -> None:
    with pytest.raises(PathNotAllowedError):
        resolve_task_path(tmp_path / "unmounted", "../x")


def test_sentinel_detects_an_empty_mount_point(root: Path) -> None:
    with pytest.raises(NasUnavailableError, match="looks unmounted"):
        resolve_task_path(root, "cam1/a.mp4", sentinel=".platesift-nas")
    with pytest.raises(NasUnavailableError, match="looks unmounted"):
        check_source(root / "cam1" / "gone.mp4", root, sentinel=".platesift-nas")
    (root / ".platesift-nas").write_bytes(b"")
    assert resolve_task_path(root, "cam1/a.mp4", sentinel=".platesift-nas").is_file()


# --- sources -------------------------------------------------------------------------------------


def test_check_source_returns_size(root: Path) -> None:
    assert check_source(root / "cam1" / "a.mp4", root) == len(VIDEO)
    assert check_source(str(root / "cam1" / "a.mp4")) == len(VIDEO)


def test_check_source_missing_is_invalid_when_root_is_reachable(root: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist") as info:
        check_source(root / "cam1" / "gone.mp4", root)
    assert info.value.permanent
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_source(root / "cam1" / "a.mp4" / "below-a-file.mp4", root)
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_source(root / "cam1" / "gone.mp4")  # local mode


def test_check_source_missing_with_unreachable_root_is_transient(tmp_path: Path) -> None:
    with pytest.raises(NasUnavailableError):
        check_source(tmp_path / "nas" / "cam1" / "a.mp4", tmp_path / "nas")


def test_check_source_directory_and_empty_file(root: Path) -> None:
    with pytest.raises(InvalidInputError, match="is a directory"):
        check_source(root / "cam1", root)
    (root / "cam1" / "empty.mp4").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is empty"):
        check_source(root / "cam1" / "empty.mp4", root)


def test_check_source_fifo_is_not_a_regular_file(root: Path) -> None:
    os.mkfifo(root / "cam1" / "pipe.mp4")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        check_source(root / "cam1" / "pipe.mp4", root)


# --- staging -------------------------------------------------------------------------------------


def test_staging_files_size_and_cleanup(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    staging = _stage(scratch)
    assert staging.path.parent == scratch
    assert staging.files() == [
        "frames.jsonl",
        "heavy_task.json",
        "rejections.jsonl",
        "thumbs/f0000002_r0.jpg",
        "thumbs/f0000002_r1.jpg",
        "tracks.jsonl",
    ]
    staging.close()
    on_disk = sum(len(data) for data in _tree(staging.path).values())
    assert staging.bytes_used() == on_disk
    assert (staging.path / "rejections.jsonl").read_bytes() == (
        b'{"from":0,"to":1,"reason":"static"}\n'
    )
    assert (staging.path / "tracks.jsonl").read_bytes() == b'{"track":1}\n'
    assert (staging.path / "frames.jsonl").read_bytes() == b'{"frame":2,"regions":[]}\n'
    with pytest.raises(ValueError, match="closed"):
        staging.append_frame("{}")
    staging.cleanup()
    assert not staging.path.exists()
    staging.cleanup()  # idempotent


def test_staging_refuses_bad_names_and_lines(tmp_path: Path) -> None:
    staging = Staging(tmp_path, "t")
    for name in ("../x.jpg", "/tmp/x.jpg", "x.jpg", "thumbs/../../x.jpg", "manifest.json"):
        with pytest.raises(ValueError):
            staging.write_thumb(name, b"x")
    with pytest.raises(ValueError, match="line break"):
        staging.append_frame("{}\n{}")
    staging.cleanup()


def test_staging_left_by_a_crash_is_replaced_and_cleaned(tmp_path: Path) -> None:
    first = Staging(tmp_path, "task/with odd:chars")
    first.write_thumb("thumbs/old.jpg", b"old")
    first.close()
    second = Staging(tmp_path, "task/with odd:chars")
    assert second.path == first.path
    assert second.path.parent == tmp_path
    assert not (second.path / "thumbs" / "old.jpg").exists()
    assert Staging(tmp_path, "task_with odd:chars").path != second.path
    second.close()
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2  # one folder per task


# --- commit --------------------------------------------------------------------------------------


def test_commit_writes_every_file_and_a_matching_manifest(tmp_path: Path) -> None:
    staging = _stage(tmp_path / "scratch")
    dest = tmp_path / "nas" / "out" / "t-1"
    manifest, sha = commit(staging, dest, _fields())
    tree = _tree(dest)
    assert sorted(tree) == [
        "frames.jsonl",
        "heavy_task.json",
        "manifest.json",
        "rejections.jsonl",
        "thumbs/f0000002_r0.jpg",
        "thumbs/f0000002_r1.jpg",
        "tracks.jsonl",
    ]
    assert sha == hashlib.sha256(tree["manifest.json"]).hexdigest()
    assert json.loads(tree["manifest.json"]) == manifest
    assert tree["manifest.json"] == manifest_json(manifest)
    assert manifest["schema_version"] == 3
    assert manifest["task_id"] == "t-1"
    for name, data in tree.items():
        if name != "manifest.json":
            assert manifest["files"][name] == {
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            assert data == (staging.path / name).read_bytes()
    assert len(manifest["files"]) == 6
    assert verify_artifact_dir(dest) == []
    staging.cleanup()


def test_commit_is_byte_deterministic(tmp_path: Path) -> None:
    one = _stage(tmp_path / "s1", "t-1")
    two = _stage(tmp_path / "s2", "t-1")
    _, sha1 = commit(one, tmp_path / "d1", _fields())
    _, sha2 = commit(two, tmp_path / "d2", _fields())
    _, sha3 = commit(one, tmp_path / "d1", _fields())  # recommit after a "crash"
    assert sha1 == sha2 == sha3
    assert _tree(tmp_path / "d1") == _tree(tmp_path / "d2")
    assert not (tmp_path / "d1" / PREVIOUS_NAME).exists()


def test_second_commit_replaces_files_removes_stale_keeps_users(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    commit(_stage(tmp_path / "s", thumbs=(0, 1, 2)), dest, _fields())
    (dest / "notes.txt").write_text("mine")
    (dest / "thumbs" / "my-own.jpg").write_bytes(b"mine too")
    (dest / ".hidden").write_bytes(b"hidden but mine")

    manifest, _ = commit(_stage(tmp_path / "s", thumbs=(0,), tag=b"v2"), dest, _fields())
    assert verify_artifact_dir(dest) == []
    tree = _tree(dest)
    assert sorted(tree) == [
        ".hidden",
        "frames.jsonl",
        "heavy_task.json",
        "manifest.json",
        "notes.txt",
        "rejections.jsonl",
        "thumbs/f0000002_r0.jpg",
        "thumbs/my-own.jpg",
        "tracks.jsonl",
    ]
    assert tree["thumbs/f0000002_r0.jpg"].endswith(b"v2")
    assert tree["notes.txt"] == b"mine"
    assert tree["thumbs/my-own.jpg"] == b"mine too"
    assert sorted(manifest["files"]) == [
        "frames.jsonl",
        "heavy_task.json",
        "rejections.jsonl",
        "thumbs/f0000002_r0.jpg",
        "tracks.jsonl",
    ]


def test_stale_directory_left_empty_is_removed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    commit(_stage(tmp_path / "s", thumbs=(0, 1)), dest, _fields())
    commit(_stage(tmp_path / "s", thumbs=()), dest, _fields())
    assert not (dest / "thumbs").exists()
    assert verify_artifact_dir(dest) == []


def test_stale_file_changed_by_someone_else_is_kept(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    commit(_stage(tmp_path / "s", thumbs=(0, 1)), dest, _fields())
    (dest / "thumbs" / "f0000002_r1.jpg").write_bytes(b"edited by a user")
    commit(_stage(tmp_path / "s", thumbs=(0,)), dest, _fields())
    assert (dest / "thumbs" / "f0000002_r1.jpg").read_bytes() == b"edited by a user"


def test_a_foreign_manifest_never_causes_deletions(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    entry = {"size": 4, "sha256": hashlib.sha256(b"mine").hexdigest()}
    (dest / "manifest.json").write_text(json.dumps({"files": {"notes.txt": entry}}))
    commit(_stage(tmp_path / "s"), dest, _fields())
    assert (dest / "notes.txt").read_text() == "mine"
    assert verify_artifact_dir(dest) == []


def test_manifest_is_written_last_and_old_one_removed_first(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    commit(_stage(tmp_path / "s", thumbs=(0, 1)), dest, _fields())
    # a directory in the way of a staged file: writing it fails in the middle of the commit
    (dest / "rejections.jsonl").unlink()
    (dest / "rejections.jsonl").mkdir()
    (dest / "rejections.jsonl" / "user-file").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"rejections\.jsonl.*directory"):
        commit(_stage(tmp_path / "s", thumbs=(0,), tag=b"v2"), dest, _fields())
    assert not (dest / "manifest.json").exists()
    assert verify_artifact_dir(dest) == [f"{dest / 'manifest.json'}: manifest missing"]
    assert not [p for p in dest.rglob("*platesift-tmp")]
    # files before it in name order were already replaced: the directory is mid-change
    assert (dest / "frames.jsonl").read_bytes().endswith(b"v2\n")
    # the old file list survived the failure, so the next commit still removes stale outputs
    assert (dest / PREVIOUS_NAME).exists()
    (dest / "rejections.jsonl" / "user-file").unlink()
    (dest / "rejections.jsonl").rmdir()
    commit(_stage(tmp_path / "s", thumbs=(0,), tag=b"v2"), dest, _fields())
    assert verify_artifact_dir(dest) == []
    assert not (dest / "thumbs" / "f0000002_r1.jpg").exists()
    assert not (dest / PREVIOUS_NAME).exists()


def test_a_vanished_artifact_directory_is_not_recreated(tmp_path: Path) -> None:
    # what a NAS unmounted mid-commit looks like to the creation of thumbs/
    gone = tmp_path / "mnt" / "out"
    with pytest.raises(NasUnavailableError, match="vanished"):
        make_dirs(gone / "thumbs", within=gone)
    assert not (tmp_path / "mnt").exists()


def test_leftover_temp_files_of_ours_are_removed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    (dest / "thumbs").mkdir(parents=True)
    (dest / ".x.platesift-tmp").write_bytes(b"half written")
    (dest / ".frames.jsonl.platesift-tmp").write_bytes(b"half")
    (dest / "thumbs" / ".f0000002_r0.jpg.platesift-tmp").write_bytes(b"half")
    (dest / "x.platesift-tmp").write_bytes(b"not our pattern")
    commit(_stage(tmp_path / "s"), dest, _fields())
    names = set(_tree(dest))
    assert not {n for n in names if n.endswith(".platesift-tmp") and "/." in f"/{n}"}
    assert "x.platesift-tmp" in names
    assert verify_artifact_dir(dest) == []


# --- unusable outputs ----------------------------------------------------------------------------


def test_check_output_dir_creates_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "c"
    check_output_dir(dest)
    assert dest.is_dir()
    assert list(dest.iterdir()) == []
    check_output_dir(str(dest))


def test_output_below_a_regular_file_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    dest = tmp_path / "file" / "out"
    with pytest.raises(OutputError, match="not a directory") as info:
        check_output_dir(dest)
    assert info.value.permanent
    with pytest.raises(OutputError, match="not a directory"):
        commit(_stage(tmp_path / "s"), dest, _fields())
    with pytest.raises(OutputError, match="not a directory"):
        check_output_dir(tmp_path / "file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_dir_is_an_output_error(tmp_path: Path) -> None:
    dest = tmp_path / "ro"
    dest.mkdir()
    dest.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output_dir(dest)
        with pytest.raises(OutputError):
            check_output_dir(dest / "sub")
        with pytest.raises(OutputError):
            commit(_stage(tmp_path / "s"), dest, _fields())
    finally:
        dest.chmod(0o700)


# --- Nas and NASActor ----------------------------------------------------------------------------


def test_nas_confines_every_operation(root: Path, tmp_path: Path) -> None:
    nas = Nas(root)
    source = nas.resolve("cam1/a.mp4")
    assert nas.check_source(source) == len(VIDEO)
    dest = nas.resolve("out/t-1")
    nas.check_output_dir(dest)
    nas.commit(_stage(tmp_path / "s"), dest, _fields())
    assert nas.verify(dest) == []
    with pytest.raises(PathNotAllowedError):
        nas.check_output_dir(tmp_path / "elsewhere")
    with pytest.raises(PathNotAllowedError):
        nas.check_source(tmp_path / "nas-sibling.mp4")
    assert not (tmp_path / "elsewhere").exists()


def test_nas_with_vanished_root_is_transient(root: Path, tmp_path: Path) -> None:
    nas = Nas(root)
    dest = nas.resolve("out/t-1")
    root.rename(tmp_path / "unmounted")
    with pytest.raises(NasUnavailableError):
        nas.commit(_stage(tmp_path / "s"), dest, _fields())
    with pytest.raises(NasUnavailableError):
        nas.check_source(dest.parent / "cam1" / "a.mp4")
    assert not root.exists()  # the commit did not recreate the root on local disk


def test_nas_local_mode_does_not_confine(tmp_path: Path) -> None:
    nas = Nas(None)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"video")
    assert nas.resolve(str(video)) == video
    assert nas.check_source(video) == 5
    with pytest.raises(InvalidInputError):
        nas.resolve("")


def test_nas_actor_round_trip(root: Path, tmp_path: Path) -> None:
    ref = NASActor.start(root)
    try:
        proxy = ref.proxy()
        assert proxy.actor_urn.get(timeout=TIMEOUT)  # the actor answers
        futures = [proxy.resolve("cam1/a.mp4"), proxy.resolve("out/t-1")]
        source, dest = pykka.get_all(futures, timeout=TIMEOUT)
        assert proxy.check_source(source).get(timeout=TIMEOUT) == len(VIDEO)
        proxy.check_output_dir(dest).get(timeout=TIMEOUT)
        staging = _stage(tmp_path / "s")
        manifest, sha = proxy.commit(staging, str(dest), _fields()).get(timeout=TIMEOUT)
        assert sha == hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest()
        assert sorted(manifest["files"]) == staging.files()
        assert proxy.verify(dest).get(timeout=TIMEOUT) == []
        # errors travel back through the future, and the actor survives them
        with pytest.raises(PathNotAllowedError):
            proxy.resolve("../escape").get(timeout=TIMEOUT)
        assert proxy.actor_urn.get(timeout=TIMEOUT)  # the actor answers
    finally:
        ref.stop(timeout=TIMEOUT)


def test_nas_actor_in_local_mode(tmp_path: Path) -> None:
    ref = NASActor.start(None)
    try:
        with pytest.raises(InvalidInputError, match="does not exist"):
            ref.proxy().check_source(tmp_path / "none.mp4").get(timeout=TIMEOUT)
    finally:
        ref.stop(timeout=TIMEOUT)


# --- an unmounted NAS never becomes local disk ------------------------------------------------


def test_commit_never_recreates_a_vanished_root(root: Path, tmp_path: Path) -> None:
    # the root went away after the task's checks: the commit itself must not rebuild it
    dest = root / "out" / "t-1"
    root.rename(tmp_path / "unmounted")
    with pytest.raises(NasUnavailableError, match="vanished"):
        commit(_stage(tmp_path / "s"), dest, _fields(), root=root)
    assert not root.exists()


def test_a_nas_lost_during_the_copy_leaves_no_manifest(root: Path, tmp_path: Path) -> None:
    calls = []

    def recheck() -> None:
        calls.append(1)
        raise NasUnavailableError("NAS root looks unmounted")

    dest = root / "out" / "t-1"
    with pytest.raises(NasUnavailableError):
        commit(_stage(tmp_path / "s"), dest, _fields(), root=root, recheck=recheck)
    assert calls == [1]
    assert not (dest / "manifest.json").exists()  # untrusted: the task is retried


def _mount_tmpfs(point: Path) -> None:
    import subprocess

    point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")


def _lazy_unmount(point: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(point)], check=True, capture_output=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("sentinel", [None, ".platesift-nas"])
def test_a_lazily_unmounted_nas_gets_nothing_written_in_its_place(
    tmp_path: Path, sentinel: str | None
) -> None:
    point = tmp_path / "mnt"
    _mount_tmpfs(point)
    try:
        (point / "cam1").mkdir()
        (point / "cam1" / "a.mp4").write_bytes(VIDEO)
        if sentinel:
            (point / sentinel).write_bytes(b"")
        nas = Nas(point, sentinel=sentinel)
        source = nas.resolve("cam1/a.mp4")
        assert nas.check_source(source) == len(VIDEO)  # the task's checks saw the NAS
        dest = nas.resolve("out/t-1")
    finally:
        _lazy_unmount(point)  # the NAS goes after decoding, before the commit
    assert point.is_dir() and os.listdir(point) == []  # the empty mount point is left
    with pytest.raises(NasUnavailableError, match="unmounted"):
        nas.commit(_stage(tmp_path / "s"), dest, _fields())
    assert os.listdir(point) == []  # nothing written to local disk under the mount point


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_root_below_an_unmounted_nas_is_not_rebuilt(tmp_path: Path) -> None:
    point = tmp_path / "mnt"
    _mount_tmpfs(point)
    try:
        (point / "platesift").mkdir()
        nas = Nas(point / "platesift")
        dest = nas.resolve("out/t-1")
        nas.check_output_dir(dest)
    finally:
        _lazy_unmount(point)
    with pytest.raises(NasUnavailableError):
        nas.commit(_stage(tmp_path / "s"), dest, _fields())
    assert os.listdir(point) == []


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 4 MiB tmpfs mounted at a temporary directory (root only), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    point = tmp_path / "mnt"
    _mount_tmpfs(point)
    yield point
    _lazy_unmount(point)


def test_a_nas_remounted_read_only_is_an_outage_not_bad_output(tmpfs: Path, tmp_path: Path) -> None:
    import subprocess

    nas = Nas(tmpfs)
    dest = nas.resolve("out/t-1")
    nas.check_output_dir(dest)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    with pytest.raises(NasUnavailableError, match="read-only") as info:
        nas.commit(_stage(tmp_path / "s"), dest, _fields())
    assert not info.value.permanent  # retried when the NAS is writable again
    with pytest.raises(NasUnavailableError, match="read-only"):
        nas.check_output_dir(nas.resolve("out/t-2"))
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    nas.commit(_stage(tmp_path / "s"), dest, _fields())  # back: the retry succeeds
    assert verify_artifact_dir(dest) == []


def test_a_full_nas_leaves_no_probe_file(tmpfs: Path) -> None:
    nas = Nas(tmpfs)
    dest = nas.resolve("out")
    nas.check_output_dir(dest)
    with open(tmpfs / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    with pytest.raises(NasUnavailableError):
        nas.check_output_dir(dest)
    assert os.listdir(dest) == []


def test_a_full_scratch_is_one_clear_transient_error(tmpfs: Path) -> None:
    from platesift.errors import ScratchError

    staging = Staging(tmpfs, "t-1")
    with pytest.raises(ScratchError, match="No space left on device") as info:
        for region in range(10_000):  # 4 MiB of tmpfs: full long before the end
            staging.write_thumb(thumb_name(region, 0), b"\xff\xd8" + bytes(8192))
    assert not info.value.permanent
    assert "\n" not in info.value.message and str(tmpfs) in info.value.message
    staging.cleanup()
    assert os.listdir(tmpfs) == []


def test_a_nas_disk_failing_with_eio_is_an_outage(
    failing_disk: FailingDisk, tmp_path: Path
) -> None:
    """Real EIO from a real filesystem: transient, no manifest, nothing written elsewhere."""
    nas = Nas(failing_disk.point)
    dest = nas.resolve("out/t-1")
    nas.check_output_dir(dest)
    failing_disk.fail()
    with pytest.raises(NasUnavailableError, match="Input/output error") as info:
        nas.commit(_stage(tmp_path / "s"), dest, _fields())
    assert not info.value.permanent
    with pytest.raises(NasUnavailableError):
        nas.check_output_dir(nas.resolve("out/t-2"))


@pytest.mark.parametrize("name", ["EIO", "ESTALE", "ENOTCONN", "ENOSPC", "ETIMEDOUT"])
def test_errnos_of_an_away_nas_are_transient_wherever_they_arise(
    root: Path, tmp_path: Path, name: str
) -> None:
    """ESTALE (NFS) and ENOTCONN (a dead FUSE/SMB mount) cannot be made here for real: they
    are raised where the OS would raise them, in the copy of the commit and the source stat."""
    code = getattr(errno, name)
    dest = root / "out" / "t-1"

    def failing(*args: Any, **kwargs: Any) -> None:
        raise OSError(code, os.strerror(code))

    with mock.patch("os.replace", failing), pytest.raises(NasUnavailableError) as info:
        commit(_stage(tmp_path / "s"), dest, _fields(), root=root)
    assert not info.value.permanent and not (dest / "manifest.json").exists()
    (root / "v.mp4").write_bytes(b"x")
    with mock.patch("os.stat", failing), pytest.raises(NasUnavailableError):
        check_source(root / "v.mp4")
