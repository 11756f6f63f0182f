"""The scratch wipe can never delete anything but scratch."""

from __future__ import annotations

from pathlib import Path

import pytest

from platesift.errors import ConfigError
from platesift.scratch import MARKER, is_empty, prepare_scratch, wipe_scratch


def test_created_marked_and_wiped(tmp_path: Path) -> None:
    scratch = prepare_scratch(tmp_path / "scratch", wipe=True)
    assert (scratch / MARKER).is_file()
    (scratch / "staging" / "x").mkdir(parents=True)
    (scratch / "staging" / "x" / "f").write_text("data")
    (scratch / "loose.tmp").write_text("data")
    prepare_scratch(tmp_path / "scratch", wipe=True)
    assert is_empty(scratch)


def test_symlinks_inside_scratch_are_removed_not_followed(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("keep")
    scratch = prepare_scratch(tmp_path / "scratch", wipe=False)
    (scratch / "link").symlink_to(precious, target_is_directory=True)
    wipe_scratch(scratch)
    assert (precious / "keep.txt").read_text() == "keep"
    assert is_empty(scratch)


def test_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    theirs = tmp_path / "data"
    theirs.mkdir()
    (theirs / "important.db").write_text("do not delete")
    with pytest.raises(ConfigError, match="not created by platesift"):
        prepare_scratch(theirs, wipe=True)
    assert (theirs / "important.db").read_text() == "do not delete"


@pytest.mark.parametrize("where", ["/", "~"])
def test_refuses_root_and_home(where: str) -> None:
    with pytest.raises(ConfigError, match="refusing"):
        prepare_scratch(Path(where).expanduser(), wipe=True)


def test_refuses_the_nas_and_above_it(tmp_path: Path) -> None:
    nas = tmp_path / "mnt" / "nas"
    nas.mkdir(parents=True)
    for bad in (nas, tmp_path / "mnt", tmp_path):
        with pytest.raises(ConfigError, match="NAS root or above"):
            prepare_scratch(bad, nas, wipe=True)
    with pytest.raises(ConfigError, match="on the NAS"):
        prepare_scratch(nas / "scratch", nas, wipe=True)
    assert nas.is_dir()


def test_symlink_to_home_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to(Path.home(), target_is_directory=True)
    with pytest.raises(ConfigError, match="home directory"):
        prepare_scratch(link, wipe=True)
