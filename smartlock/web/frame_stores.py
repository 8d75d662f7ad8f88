"""Frames kept for enrollment: the ones captured from the live view (the dashboard's own folder) and the
ones `smartlock collect` saved (its --log-path, read only)."""

from __future__ import annotations

import builtins
import contextlib
import re
import secrets
import time
from pathlib import Path

from smartlock.engine.files import CollectedFrame, collected_crop, collected_file, collected_frames
from smartlock.fileio import atomic_write


class CaptureStore:
    """Frames taken from the live view for enrollment: JPEG files, the newest ``keep`` kept."""

    def __init__(self, folder: Path, keep: int = 24) -> None:
        self.folder = Path(folder)
        self.keep = keep
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, jpeg: bytes) -> str:
        capture_id = f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"
        atomic_write(self.folder / f"{capture_id}.jpg", jpeg)
        for old in self._files()[: -self.keep]:
            with contextlib.suppress(OSError):
                old.unlink()
        return capture_id

    def list(self) -> list[str]:
        return [path.stem for path in reversed(self._files())]

    def path(self, capture_id: str) -> Path | None:
        if not re.fullmatch(r"[0-9]{13}-[0-9a-f]{6}", capture_id):
            return None
        target = self.folder / f"{capture_id}.jpg"
        return target if target.is_file() else None

    def remove(self, capture_id: str) -> None:
        target = self.path(capture_id)
        if target is not None:
            with contextlib.suppress(OSError):
                target.unlink()

    def _files(self) -> builtins.list[Path]:
        return sorted(self.folder.glob("[0-9]*.jpg"))


class CollectedFrames:
    """The frames `smartlock collect` saved (its --log-path), newest first, read through the engine's
    ``smartlock.engine.files`` (which owns their names, sidecars and crops)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def list(self, limit: int = 60) -> builtins.list[CollectedFrame]:
        return collected_frames(self.folder, limit)

    def path(self, name: str) -> Path | None:
        """The frame (or crop) file ``name``; None when the name is unsafe or the file is missing."""
        return collected_file(self.folder, name)

    def crop_path(self, name: str) -> Path | None:
        """The best in-band face crop of the frame ``name``; None when it has none."""
        return collected_crop(self.folder, name)
