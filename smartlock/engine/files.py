"""The files the engine and the collector write, and the functions others read them with.

Unlock frames (the seed's layout)::

    <log-path>/unlock-frames/<timestamp>[-N]/frame.jpeg      the analysed frame
                                            /faces.json      {"faces": [Face...], "decision": ..., ...}
                                            /<label>-<confidence>   empty marker, one per face above threshold

Collected frames (``smartlock collect``'s --log-path)::

    <label>-<confidence:.2f>-<timestamp>[-N].jpeg    the full frame
    <stem>.json                                      sidecar: every face, in_band, crop name
    <stem>.face-<n>.jpeg                             crop of the n-th face in the band

``<timestamp>`` is UTC to the second in ISO 8601 basic format, ``20261129T103117Z`` (``name_timestamp``):
no spaces or colons, so names need no quoting in a shell. Older installations wrote local time with its UTC
offset, ``2026-11-29 10:31:17+00:00``; those names are still read (``find_unlock_frame``, the collected-frame
listing). Folders and
sidecars are written before they become visible (renamed into place; the frame last), so a reader never
sees half of one. The dashboard lists and reads them through the functions here, not by their names.

They hold faces and names, so every file is 0600 in a 0700 folder, and both kinds are kept for a bounded
number of days and a bounded count (``prune_unlock_frames``, ``prune_collected``: by modification time).
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smartlock.fileio import atomic_write
from smartlock.logs import PRIVATE_FILE, private_dir
from smartlock.recognition.schemas import Face

logger = logging.getLogger(__name__)

UNLOCK_FRAMES = "unlock-frames"
FRAME_FILE = "frame.jpeg"
FACES_FILE = "faces.json"
CROP_INFIX = ".face-"

_COLLECTED = re.compile(
    r"(?P<label>.+)-(?P<confidence>[0-9]+\.[0-9]+)-(?P<taken>\d{8}T\d{6}Z(?:-\d+)?|\d{4}-\d\d-\d\d.+)\.jpeg"
)
_SAFE_NAME = re.compile(r"[^/\\\x00]+")
DAY = 86400.0
LEFTOVER_AGE = 3600.0  # a staging folder or orphan file this old is a crash's leftover, not a write going on


def current_timestamp(now: datetime | None = None) -> str:
    """Local time with its UTC offset, to the second, space-separated: the engine's event times (and the
    folder and file names of older installations)."""
    now = now or datetime.now()
    return now.astimezone().replace(microsecond=0).isoformat(" ")


def name_timestamp(now: datetime | float | None = None) -> str:
    """UTC to the second in ISO 8601 basic format (``20261129T103117Z``): the folder and file names."""
    if now is None:
        moment = datetime.now(UTC)
    elif isinstance(now, datetime):
        moment = now.astimezone(UTC)
    else:
        moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _as_name_timestamp(timestamp: str) -> str:
    """An ISO 8601 timestamp in the names' basic format; text that is no timestamp is kept (made safe)."""
    try:
        parsed = datetime.fromisoformat(timestamp)
    except ValueError:
        return re.sub(r"[\s:/\\]+", "-", timestamp)
    return name_timestamp(parsed if parsed.tzinfo else parsed.astimezone())


def unique_path(path: Path) -> Path:
    """``path``, or ``stem-2.ext``, ``stem-3.ext``, ... when it exists (several saves in one second)."""
    if not path.exists():
        return path
    for index in range(2, 10_000):
        candidate = path.with_name(f"{path.stem}-{index}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"too many files named like {path}")


def _safe_name(name: str | None) -> bool:
    """A plain file or folder name (no path, not hidden): safe to join to a folder we own."""
    return bool(name) and _SAFE_NAME.fullmatch(name or "") is not None and not (name or "").startswith(".")


def _faces_of(payload: object) -> list[Face]:
    """The well-formed faces of a saved ``faces`` list (an old or damaged entry is skipped, not fatal)."""
    return [face for face, _ in _faces_with_liveness(payload)]


def _faces_with_liveness(payload: object) -> list[tuple[Face, Any]]:
    """Each well-formed face of a saved ``faces`` list with its ``liveness`` field (None when absent)."""
    faces = []
    for item in payload if isinstance(payload, list) else []:
        with contextlib.suppress(ValidationError):
            face = Face.model_validate(item)
            faces.append((face, item.get("liveness") if isinstance(item, dict) else None))
    return faces


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


# -- unlock frames ----------------------------------------------------------------------------------


def unlock_frames_dir(log_path: Path) -> Path:
    return Path(log_path) / UNLOCK_FRAMES


def marker_name(face: Face) -> str:
    """The seed's empty marker file for a face above the threshold: ``<label>-<confidence>``."""
    return f"{face.label}-{face.confidence}"


STAGING_PREFIX = ".incoming-"


def _write_private(path: Path, data: bytes) -> None:
    """A new file, 0600 from its creation on (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_unlock_frame(log_path: Path, frame_jpeg: bytes, document: Mapping[str, Any],
                       markers: Iterable[str] = ()) -> Path:
    """A new ``unlock-frames/<timestamp>`` folder with the frame, ``faces.json`` (``document``) and the
    markers; built under a hidden name and renamed, so it appears whole. Returns the folder."""
    root = private_dir(unlock_frames_dir(log_path))
    target = unique_path(root / name_timestamp())
    staging = Path(tempfile.mkdtemp(dir=root, prefix=STAGING_PREFIX))  # 0700
    try:
        _write_private(staging / FRAME_FILE, frame_jpeg)
        _write_private(staging / FACES_FILE, json.dumps(document, indent=2).encode("utf-8"))
        for marker in markers:
            _write_private(staging / marker, b"")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


@dataclass(frozen=True)
class UnlockFrame:
    """One saved unlock: its folder (its name is the event's ``frame_dir``) and what faces.json says."""

    folder: Path
    faces: list[Face] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    threshold: float | None = None
    captured: float | None = None
    liveness: list[Any] = field(default_factory=list)  # per face (as ``faces``): its verdict, None if none

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def frame(self) -> Path:
        return self.folder / FRAME_FILE


def read_unlock_frame(folder: Path) -> UnlockFrame | None:
    """The unlock saved in ``folder``, or None when it has no frame; a missing or damaged faces.json
    gives no faces."""
    folder = Path(folder)
    if not (folder / FRAME_FILE).is_file():
        return None
    document = _read_json(folder / FACES_FILE)
    decision = document.get("decision")
    threshold, captured = document.get("threshold"), document.get("captured")
    marked = _faces_with_liveness(document.get("faces"))
    return UnlockFrame(
        folder=folder,
        faces=[face for face, _ in marked],
        liveness=[liveness for _, liveness in marked],
        decision=decision if isinstance(decision, dict) else None,
        threshold=float(threshold) if isinstance(threshold, int | float) else None,
        captured=float(captured) if isinstance(captured, int | float) else None,
    )


def unlock_frame(log_path: Path, name: str | None) -> UnlockFrame | None:
    """The unlock whose folder is ``name`` (an ``unlocked`` event's ``frame_dir``); None if unknown/unsafe."""
    if not _safe_name(name):
        return None
    return read_unlock_frame(unlock_frames_dir(log_path) / str(name))


def _unlock_folders(log_path: Path) -> list[Path]:
    """The finished unlock folders, newest first (by modification time, then name)."""
    root = unlock_frames_dir(log_path)
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []

    def newest(folder: Path) -> tuple[float, str]:
        try:
            return folder.stat().st_mtime, folder.name
        except OSError:
            return 0.0, folder.name

    return sorted(folders, key=newest, reverse=True)


def list_unlock_frames(log_path: Path, limit: int | None = None) -> list[UnlockFrame]:
    """The saved unlocks, newest first, at most ``limit``."""
    frames: list[UnlockFrame] = []
    for folder in _unlock_folders(log_path):
        if limit is not None and len(frames) >= limit:
            break
        saved = read_unlock_frame(folder)
        if saved is not None:
            frames.append(saved)
    return frames


def find_unlock_frame(log_path: Path, when: float, folder_name: str | None = None,
                      slack: float = 3.0) -> UnlockFrame | None:
    """The unlock saved for an event: the folder it names (``frame_dir``), else the one named by the time
    to the second, up to ``slack`` s before ``when`` (events of older engines name no folder): in the basic
    UTC format of today's names or in the local-time format older installations wrote."""
    named = unlock_frame(log_path, folder_name)
    if named is not None:
        return named
    moment = datetime.fromtimestamp(when).astimezone()
    names: set[str] = set()
    for delta in range(math.ceil(slack), -2, -1):
        second = (moment - timedelta(seconds=delta)).replace(microsecond=0)
        names |= {second.isoformat(" "), name_timestamp(second)}
    for folder in _unlock_folders(log_path):
        if folder.name in names or folder.name.rsplit("-", 1)[0] in names:
            saved = read_unlock_frame(folder)
            if saved is not None:
                return saved
    return None


# -- collected frames -------------------------------------------------------------------------------


def collected_path(folder: Path, label: str, confidence: float, timestamp: str | None = None) -> Path:
    """A new frame path ``<label>-<confidence:.2f>-<timestamp>.jpeg`` in ``folder`` (made unique); the
    timestamp (now by default, or any ISO 8601 time given) is written in the basic UTC format."""
    stamp = _as_name_timestamp(timestamp) if timestamp else name_timestamp()
    return unique_path(Path(folder) / f"{label}-{confidence:.2f}-{stamp}.jpeg")


def _stem(frame: Path | str) -> str:
    name = Path(frame).name
    return name[: -len(".jpeg")] if name.endswith(".jpeg") else Path(name).stem


def sidecar_path(frame: Path) -> Path:
    """``<stem>.json`` next to a collected frame."""
    return Path(frame).with_name(_stem(frame) + ".json")


def crop_name(frame: Path, index: int) -> str:
    """The file name of the ``index``-th (1, 2, ...) face crop of a collected frame."""
    return f"{_stem(frame)}{CROP_INFIX}{index}.jpeg"


def write_collected(frame: Path, frame_jpeg: bytes, sidecar: Mapping[str, Any],
                    crops: Mapping[str, bytes] | None = None) -> None:
    """The crops (by file name), then the sidecar, then the frame (last: a frame on disk always has its
    sidecar)."""
    frame = Path(frame)
    private_dir(frame.parent)
    written: list[Path] = []
    try:
        for name, jpeg in (crops or {}).items():
            written.append(frame.parent / name)
            atomic_write(written[-1], jpeg, mode=PRIVATE_FILE)
        written.append(sidecar_path(frame))
        atomic_write(written[-1], json.dumps(sidecar, indent=2).encode("utf-8"), mode=PRIVATE_FILE)
        atomic_write(frame, frame_jpeg, mode=PRIVATE_FILE)
    except BaseException:  # e.g. a full disk: no crop or sidecar without its frame is left behind
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise


@dataclass(frozen=True)
class CollectedFrame:
    """A frame the collector saved; ``crop`` is the file name of its best in-band face crop, if any."""

    path: Path
    label: str
    confidence: float
    taken: str
    crop: str | None

    @property
    def name(self) -> str:
        return self.path.name

    def faces(self) -> list[dict[str, Any]]:
        """The sidecar's faces (each a Face's JSON plus ``in_band`` and ``crop``); [] when unreadable."""
        faces = _read_json(sidecar_path(self.path)).get("faces")
        return [face for face in faces if isinstance(face, dict)] if isinstance(faces, list) else []


def _frames_in(folder: Path) -> list[Path]:
    """The collected frames (not crops) in ``folder``, oldest first."""
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return 0.0

    try:
        # only the collector's own names: never a JPEG someone else keeps in the same folder
        frames = [p for p in Path(folder).glob("*.jpeg") if CROP_INFIX not in p.name
                  and _COLLECTED.fullmatch(p.name)]
    except OSError:
        return []
    return sorted(frames, key=mtime)


def _best_crop(frame: Path) -> str | None:
    faces = _read_json(sidecar_path(frame)).get("faces")
    crops = [f for f in faces if isinstance(f, dict) and f.get("crop")] if isinstance(faces, list) else []
    if not crops:
        return None

    def confidence(face: dict[str, Any]) -> float:
        top = face.get("top_prediction")
        value = top.get("confidence") if isinstance(top, dict) else None
        return float(value) if isinstance(value, int | float) else 0.0

    crop = str(max(crops, key=confidence)["crop"])
    return crop if _safe_name(crop) and (frame.parent / crop).is_file() else None


def read_collected(frame: Path) -> CollectedFrame | None:
    """The collected frame at ``frame``, or None when its name is not a collector's."""
    match = _COLLECTED.fullmatch(Path(frame).name)
    if match is None:
        return None
    return CollectedFrame(Path(frame), match["label"], float(match["confidence"]), match["taken"],
                          _best_crop(Path(frame)))


def collected_frames(folder: Path, limit: int | None = None) -> list[CollectedFrame]:
    """The frames the collector saved in ``folder``, newest first, at most ``limit``."""
    frames: list[CollectedFrame] = []
    for path in reversed(_frames_in(folder)):
        if limit is not None and len(frames) >= limit:
            break
        saved = read_collected(path)
        if saved is not None:
            frames.append(saved)
    return frames


def collected_file(folder: Path, name: str) -> Path | None:
    """A file the collector saved (frame or crop) by its name; None when unsafe or missing."""
    if not _safe_name(name) or not name.endswith(".jpeg"):
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


def collected_crop(folder: Path, name: str) -> Path | None:
    """The best in-band face crop of the collected frame ``name``; None when it has none."""
    frame = collected_file(folder, name)
    crop = _best_crop(frame) if frame is not None else None
    return Path(folder) / crop if crop else None


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _expired(path: Path, cutoff: float | None) -> bool:
    mtime = _mtime(path)
    return cutoff is not None and mtime is not None and mtime < cutoff


def _cutoff(keep_days: float | None, now: float | None) -> float | None:
    return None if keep_days is None else (time.time() if now is None else now) - keep_days * DAY


def prune_unlock_frames(log_path: Path, keep_days: float | None = None, keep: int | None = None,
                        now: float | None = None) -> int:
    """Delete the unlock folders older than ``keep_days`` (by modification time, against ``now``, default
    the wall clock) and all but the newest ``keep``; also staging folders a crash left. Returns how many
    unlock folders went."""
    cutoff = _cutoff(keep_days, now)
    folders = _unlock_folders(log_path)  # newest first
    gone = [folder for index, folder in enumerate(folders)
            if (keep is not None and index >= keep) or _expired(folder, cutoff)]
    leftover = _cutoff(LEFTOVER_AGE / DAY, now)
    with contextlib.suppress(OSError):
        gone_staging = [p for p in unlock_frames_dir(log_path).glob(f"{STAGING_PREFIX}*")
                        if _expired(p, leftover)]
        for folder in gone_staging:
            shutil.rmtree(folder, ignore_errors=True)
    for folder in gone:
        shutil.rmtree(folder, ignore_errors=True)
    return len(gone)


def _remove_collected(folder: Path, frame: Path) -> None:
    crops = Path(folder).glob(f"{glob.escape(_stem(frame))}{CROP_INFIX}*.jpeg")
    for item in [frame, sidecar_path(frame), *crops]:
        with contextlib.suppress(OSError):
            item.unlink()


def prune_collected(folder: Path, keep: int | None = None, *, keep_days: float | None = None,
                    now: float | None = None) -> int:
    """Keep the newest ``keep`` collected frames, none older than ``keep_days`` (by modification time,
    against ``now``), each with its crops and sidecar; crops and sidecars whose frame is gone and temp
    files a crash left go too. Returns how many frames went."""
    frames = _frames_in(folder)  # oldest first
    cutoff = _cutoff(keep_days, now)
    excess = max(0, len(frames) - keep) if keep is not None else 0
    gone = [frame for index, frame in enumerate(frames) if index < excess or _expired(frame, cutoff)]
    for frame in gone:
        _remove_collected(folder, frame)
    leftover = _cutoff(LEFTOVER_AGE / DAY, now)
    with contextlib.suppress(OSError):
        for sidecar in Path(folder).glob("*.json"):
            frame = sidecar.with_name(sidecar.stem + ".jpeg")
            if not frame.exists() and _COLLECTED.fullmatch(frame.name) and _expired(sidecar, leftover):
                _remove_collected(folder, frame)
        for temp in Path(folder).glob(".*.tmp"):
            if _expired(temp, leftover):
                temp.unlink(missing_ok=True)
    return len(gone)
