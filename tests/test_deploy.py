"""The deployment files agree with the code: the systemd unit runs as a non-root plugdev member,
restarts, has the watchdog and waits for the NAS the config names; the udev rule covers both
Coral USB ids that `platesift doctor` looks for."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from models.coral_usb import CORAL_IDS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / "platesift.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_systemd_unit() -> None:
    unit = unit_settings()
    assert unit["User"] != ["root"] and unit["User"][0]
    assert "plugdev" in unit["SupplementaryGroups"][0].split()
    assert unit["Restart"] == ["always"]
    assert unit["Type"] == ["notify"]
    assert float(unit["WatchdogSec"][0]) > 0
    config = tomllib.loads((DEPLOY / "platesift.toml").read_text())
    nas = config["paths"]["nas_root"]
    assert unit["RequiresMountsFor"] == [nas]
    assert nas in unit["ReadWritePaths"][0].split()


def test_udev_rule_covers_both_coral_ids() -> None:
    rules = [
        line
        for line in (DEPLOY / "99-platesift-coral.rules").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    ids = set()
    for rule in rules:
        vendor = re.search(r'ATTRS?\{idVendor\}=="([0-9a-f]{4})"', rule)
        product = re.search(r'ATTRS?\{idProduct\}=="([0-9a-f]{4})"', rule)
        assert vendor and product, rule
        assert 'GROUP="plugdev"' in rule and 'SUBSYSTEM=="usb"' in rule
        ids.add((vendor.group(1), product.group(1)))
    assert ids == set(CORAL_IDS)
