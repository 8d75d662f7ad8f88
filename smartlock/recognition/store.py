"""Saving and loading a gallery: ``gallery.npz`` (embeddings, no pickle) + ``gallery.json`` (the rest).

Every file is written to a temporary file in the same folder, fsynced and renamed, so no file is ever
half written. The two files are tied by the sha256 of the embeddings recorded in ``gallery.json``, and
the rename of ``gallery.json`` is the single commit point: the new embeddings are first made durable
as ``gallery.pending.npz``, then ``gallery.json`` naming them replaces the old one, then they are
renamed to ``gallery.npz``. A crash before the commit leaves the old model (a stale pending file is
dropped by the next save); a crash after it leaves the new one, which a load reads from the pending
file and the next save finishes renaming. Face crops of enrolled photos (for the dashboard) live in
``faces/<image_id>.jpg``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from smartlock.errors import ConfigError, ModelCorrupt, ModelError
from smartlock.fileio import atomic_write, fsync_dir
from smartlock.recognition.gallery import Calibration, Gallery, ImageRecord

EMBEDDINGS_FILE = "gallery.npz"
PENDING_EMBEDDINGS_FILE = "gallery.pending.npz"
METADATA_FILE = "gallery.json"
CALIBRATION_PLOT = "calibration.png"
CROPS_DIR = "faces"
FORMAT = "smartlock-gallery"
VERSION = 1
_IMAGE_ID = re.compile(r"[0-9a-f]{8,64}")

logger = logging.getLogger(__name__)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _committed_sha256(model_dir: Path) -> str | None:
    try:
        value = json.loads((model_dir / METADATA_FILE).read_text(encoding="utf-8")).get("embeddings_sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _settle(model_dir: Path) -> None:
    """Finish the commit a crash interrupted (gallery.json already names the pending embeddings), or
    drop a pending file no commit names."""
    pending = model_dir / PENDING_EMBEDDINGS_FILE
    try:
        data = pending.read_bytes()
    except FileNotFoundError:
        return
    if _sha256(data) == _committed_sha256(model_dir):
        os.replace(pending, model_dir / EMBEDDINGS_FILE)
    else:
        pending.unlink()
    fsync_dir(model_dir)


def save_gallery(model_dir: Path, gallery: Gallery) -> None:
    """Write the gallery into ``model_dir`` (see the module docstring for the crash-safe order);
    ModelError if the folder cannot be written (disk full, read-only, ...)."""
    model_dir = Path(model_dir)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        embeddings=np.ascontiguousarray(gallery.embeddings, dtype=np.float32),
        image_ids=np.array([record.image_id for record in gallery.records], dtype=str).reshape(-1),
    )
    npz = buffer.getvalue()
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "backend": gallery.backend,
        "model_hashes": gallery.model_hashes,
        "embedding_size": gallery.embedding_size,
        "embeddings_sha256": _sha256(npz),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "images": [
            {"image_id": r.image_id, "person": r.person, "source": r.source} for r in gallery.records
        ],
        "calibration": gallery.calibration.to_json(),
    }
    try:
        model_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # faces and names: the owner's only
        _settle(model_dir)
        atomic_write(model_dir / PENDING_EMBEDDINGS_FILE, npz)
        atomic_write(model_dir / METADATA_FILE, json.dumps(metadata, indent=1).encode("utf-8"))  # commit
        os.replace(model_dir / PENDING_EMBEDDINGS_FILE, model_dir / EMBEDDINGS_FILE)
        fsync_dir(model_dir)
    except OSError as err:
        raise ModelError(f"cannot save the gallery in {model_dir}: {err.strerror or err}") from err


def load_gallery(model_dir: Path) -> Gallery:
    """Read a model folder; ModelError if there is none, ModelCorrupt if it is damaged or inconsistent."""
    model_dir = Path(model_dir)
    meta_path, npz_path = model_dir / METADATA_FILE, model_dir / EMBEDDINGS_FILE
    if not meta_path.is_file():
        raise ModelError(
            f"no trained model in {model_dir} ({METADATA_FILE} is missing): "
            "run `smartlock train -d DATASET -o MODEL_DIR` first"
        )
    # A save in another process may rename between our reads: read the pair again before giving up.
    for attempt in range(3):
        metadata, npz = _read_committed(model_dir)
        if npz is not None:
            break
        if attempt < 2:
            time.sleep(0.05)
    else:
        if not npz_path.exists():
            raise ModelCorrupt(f"{npz_path} is missing: retrain with `smartlock train`")
        raise ModelCorrupt(f"{npz_path} does not match {meta_path} (damaged, or from another model): "
                           "retrain with `smartlock train`")
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as arrays:
            embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
            image_ids = [str(v) for v in arrays["image_ids"]]
        images = metadata["images"]
        records = tuple(
            ImageRecord(str(item["image_id"]), str(item["person"]), str(item["source"])) for item in images
        )
        calibration = Calibration.from_json(metadata["calibration"])
        backend = str(metadata["backend"])
        hashes = {str(k): str(v) for k, v in dict(metadata["model_hashes"]).items()}
        size = int(metadata["embedding_size"])
    except (KeyError, TypeError, ValueError, OSError) as err:
        raise ModelCorrupt(f"{model_dir} holds an inconsistent gallery: {err!r}") from None
    if embeddings.ndim != 2 or embeddings.shape != (len(records), size) or not np.isfinite(embeddings).all():
        raise ModelCorrupt(f"{npz_path}: embeddings of shape {embeddings.shape} do not fit "
                           f"{len(records)} images of size {size}")
    if image_ids != [r.image_id for r in records]:
        raise ModelCorrupt(f"{npz_path} and {meta_path} list different images")
    people = [r.person for r in records]
    if people != sorted(people):
        raise ModelCorrupt(f"{meta_path}: images are not grouped by person")
    return Gallery(backend=backend, model_hashes=hashes, records=records, embeddings=embeddings,
                   calibration=calibration)


def _read_committed(model_dir: Path) -> tuple[dict, bytes | None]:
    """The metadata, and the embeddings it names (gallery.npz, or the pending file of a commit a
    crash cut short); None for the embeddings when neither matches."""
    meta_path = model_dir / METADATA_FILE
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelCorrupt(f"{meta_path} is corrupt (not valid JSON): {err}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelCorrupt(f"{meta_path} is not a smartlock gallery")
    if metadata.get("version") != VERSION:
        raise ModelCorrupt(f"{meta_path} has format version {metadata.get('version')}; this smartlock "
                           f"reads version {VERSION}: retrain with `smartlock train`")
    expected = metadata.get("embeddings_sha256")
    unreadable = None
    for name in (EMBEDDINGS_FILE, PENDING_EMBEDDINGS_FILE):
        try:
            npz = (model_dir / name).read_bytes()
        except FileNotFoundError:
            continue
        except OSError as err:
            unreadable = unreadable or err
            continue
        if _sha256(npz) == expected:
            return metadata, npz
    if unreadable is not None:
        reason = unreadable.strerror or unreadable
        raise ModelCorrupt(f"{model_dir / EMBEDDINGS_FILE} cannot be read: {reason}")
    return metadata, None


def crop_path(model_dir: Path, image_id: str) -> Path:
    """Where the face crop of enrolled image ``image_id`` is kept; ValueError for a malformed id."""
    if not _IMAGE_ID.fullmatch(image_id):
        raise ValueError(f"bad image id {image_id!r}")
    return Path(model_dir) / CROPS_DIR / f"{image_id}.jpg"


def make_private(model_dir: Path) -> None:
    """Make an existing model folder (face embeddings, crops, names, the API key) its owner's only."""
    model_dir = Path(model_dir)
    if model_dir.is_dir() and model_dir.stat().st_mode & 0o077:
        os.chmod(model_dir, 0o700)
        logger.info("made the model folder %s private (0700): it holds faces and names", model_dir)


def has_gallery(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a saved gallery (else Recognizer.open_or_create makes an empty one)."""
    return (Path(model_dir) / METADATA_FILE).exists()


def gallery_backend(model_dir: Path) -> str | None:
    """The backend the gallery in ``model_dir`` was made with, or None when there is no gallery yet;
    ConfigError when its metadata cannot be read."""
    path = Path(model_dir) / METADATA_FILE
    try:
        backend = json.loads(path.read_text(encoding="utf-8")).get("backend")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as err:
        raise ConfigError(f"the gallery in {model_dir} is unreadable: {err}") from err
    return str(backend) if backend is not None else None
