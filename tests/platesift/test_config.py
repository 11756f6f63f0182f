"""Settings: file, environment and overrides, and one clear message per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from platesift.config import MOVED_KEYS, describe, load_settings, with_task_params
from platesift.errors import ConfigError


def test_defaults_are_valid() -> None:
    s = load_settings(env={})
    assert s.analysis.width == 480
    assert s.proposer.backend == "auto"


def test_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[motion]\nthreshold = 30\n[proposer]\nbackend = "none"\n')
    s = load_settings(
        cfg, env={"PLATESIFT_MOTION__THRESHOLD": "40"}, overrides=["motion.min_area=0.01"]
    )
    assert s.motion.threshold == 40.0
    assert s.motion.min_area == 0.01
    assert s.proposer.backend == "none"
    s = load_settings(
        cfg, env={"PLATESIFT_MOTION__THRESHOLD": "40"}, overrides=["motion.threshold=50"]
    )
    assert s.motion.threshold == 50.0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("motion.treshold=3", "unknown setting motion.treshold (did you mean motion.threshold?)"),
        ("motion.threshold=-1", "setting motion.threshold must be at least 1"),
        ("motion.threshold=abc", "setting motion.threshold must be a number"),
        ("analysis.width=12.5", "setting analysis.width must be a whole number"),
        (
            "proposer.backend=gpu",
            "setting proposer.backend must be one of auto, edgetpu, tflite, opencv, none",
        ),
        ("output.thumbnails=maybe", "setting output.thumbnails must be one of best, all, none"),
        ("output.best_crops=0", "setting output.best_crops must be at least 1"),
        ("nonsense", "must look like section.key=value"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={}, overrides=[override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[motion\nthreshold=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('[motion]\nthreshold = "high"\n')
    with pytest.raises(ConfigError, match=r"motion\.threshold must be a number"):
        load_settings(wrong, env={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[moton]\nthreshold = 3\n")
    with pytest.raises(ConfigError, match=r"unknown setting moton\.threshold"):
        load_settings(unknown, env={})


def test_an_old_boolean_thumbnails_setting_says_what_it_became(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[output]\nthumbnails = true\n")
    with pytest.raises(ConfigError, match=r"now best, all or none \(true was all"):
        load_settings(old, env={})
    (tmp_path / "new.toml").write_text('[output]\nthumbnails = "all"\n')
    assert load_settings(tmp_path / "new.toml", env={}).output.thumbnails == "all"


def test_bad_environment_value() -> None:
    with pytest.raises(ConfigError, match=r"analysis\.width must be a whole number"):
        load_settings(env={"PLATESIFT_ANALYSIS__WIDTH": "wide"})


def test_paths_are_not_parameters() -> None:
    s = load_settings(env={}, overrides=["paths.scratch=/tmp/x"])
    assert "paths" not in s.effective_parameters()
    assert s.scratch_path() == Path("/tmp/x")


def test_every_setting_is_described() -> None:
    keys = [k for k, _, doc in describe() if doc]
    assert len(keys) == len(describe())
    assert "motion.threshold" in keys


def test_a_task_can_tune_detection_but_not_the_machine() -> None:
    base = load_settings(env={})
    tuned = with_task_params(base, {"motion.threshold": 30, "analysis.width": 320})
    assert tuned.motion.threshold == 30 and tuned.analysis.width == 320
    for key in ("resources.chunk_mb", "resources.decode_threads", "proposer.backend"):
        with pytest.raises(ConfigError, match=f"setting {key} cannot be set per task"):
            with_task_params(base, {key: 1})
    assert "resources" not in base.effective_parameters()


def test_a_moved_setting_says_where_it_went(tmp_path: Path) -> None:
    assert MOVED_KEYS["analysis.chunk_mb"] == "resources.chunk_mb"
    cfg = tmp_path / "old.toml"
    cfg.write_text("[analysis]\ndecode_threads = 4\n")
    attempts = [
        lambda: load_settings(cfg, env={}),
        lambda: load_settings(env={"PLATESIFT_ANALYSIS__CHUNK_MB": "16"}),
        lambda: load_settings(env={}, overrides=["analysis.filter_nice=3"]),
        lambda: with_task_params(load_settings(env={}), {"analysis.prefetch_chunks": 1}),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError, match=r"setting analysis\.\w+ is now resources\.\w+$"):
            attempt()


@pytest.mark.parametrize("value", ["/mnt/nas/.sentinel", "sub/.sentinel", "..", "."])
def test_the_nas_sentinel_must_be_a_plain_file_name(value: str) -> None:
    with pytest.raises(ConfigError, match="plain file name"):
        load_settings(env={}, overrides=[f"paths.nas_sentinel={value}"])
    assert load_settings(env={}, overrides=["paths.nas_sentinel=.nas"]).paths.nas_sentinel == ".nas"
