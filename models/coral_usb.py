"""Finding Coral USB accelerators on the USB bus (sysfs), before and after their firmware load:
what `proposer.backend = auto` and `platesift doctor` both ask."""

from __future__ import annotations

from pathlib import Path

CORAL_IDS = {
    ("1a6e", "089a"): "Coral USB (before firmware load)",
    ("18d1", "9302"): "Coral USB (firmware loaded)",
}
USB_ROOT = Path("/sys/bus/usb/devices")


def coral_device_dirs(root: Path | None = None) -> list[tuple[Path, str]]:
    """(sysfs directory, what it is) of every Coral on the USB bus."""
    root = USB_ROOT if root is None else root
    found = []
    for dev in sorted(root.glob("*")) if root.is_dir() else []:
        try:
            vid = (dev / "idVendor").read_text().strip()
            pid = (dev / "idProduct").read_text().strip()
        except OSError:
            continue
        if (vid, pid) in CORAL_IDS:
            found.append((dev, CORAL_IDS[(vid, pid)]))
    return found


def coral_devices(root: Path | None = None) -> list[tuple[str, str]]:
    """(description, link speed in Mbit/s) of every Coral on the USB bus."""
    found = []
    for dev, kind in coral_device_dirs(root):
        speed = (dev / "speed").read_text().strip() if (dev / "speed").exists() else "?"
        found.append((f"{kind} at {dev.name}", speed))
    return found


__all__ = ["CORAL_IDS", "USB_ROOT", "coral_device_dirs", "coral_devices"]
