"""training.data: splits per source, and the label audit that keeps wrong boxes out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import training.data as data
from training.data import read_dataset


def write_source(root: Path, name: str, rows: list[dict]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def row(image: str, split: str, box: list[float]) -> dict:
    return {"image": image, "split": split, "width": 300, "height": 300, "plates": [box]}


ROWS = [
    row("images/test_close.jpg", "test", [10, 20, 290, 280]),  # a close-up: kept by rule
    row("images/test_car.jpg", "test", [100, 100, 220, 250]),  # a car photo: needs the audit
    row("images/test_checked.jpg", "test", [120, 200, 180, 225]),  # named in the audit file
    row("images/train_car.jpg", "train", [40, 40, 200, 200]),
    row("images/valid_close.jpg", "valid", [0, 0, 300, 300]),
]


def test_an_audited_source_keeps_close_ups_and_checked_photos_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = tmp_path / "audit"
    audit.mkdir()
    (audit / "intl-web.txt").write_text("# checked by eye\nimages/test_checked.jpg\n")
    monkeypatch.setattr(data, "AUDIT_DIR", audit)
    write_source(tmp_path / "d", "intl-web", ROWS)
    write_source(tmp_path / "d", "other", ROWS)
    kept = {(s.source, s.path.name, s.split) for s in read_dataset(tmp_path / "d")}
    assert {(n, sp) for src, n, sp in kept if src == "intl-web"} == {
        ("test_close.jpg", "report"),
        ("test_checked.jpg", "report"),
        ("valid_close.jpg", "tune"),
    }
    assert len([k for k in kept if k[0] == "other"]) == len(ROWS)  # no audit, all kept


def test_the_shipped_audit_names_real_test_photos_only() -> None:
    names = data.audited("intl-web")
    assert names and all(n.startswith("images/test_") for n in names)
    assert data.audited("ro-dashcam") is None
