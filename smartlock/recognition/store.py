"""Saving and loading a gallery: ``gallery.npz`` (embeddings, no pickle) + ``gallery.json`` (the rest).

Every file is written to a temporary file in the same folder and renamed over the old one, so a crash
leaves the old model or the new one, never half of one. ``gallery.json`` records the sha256 of the
``.npz`` it belongs to; it is renamed last, so a model whose two files disagree is reported as corrupt.
Face crops of enrolled photos (for the dashboard) live in ``faces/<image_id>.jpg``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from smartlock.errors import ModelCorrupt, ModelError
from smartlock.recognition.gallery import Calibration, Gallery, ImageRecord

EMBEDDINGS_FILE = "gallery.npz"
METADATA_FILE = "gallery.json"
CALIBRATION_PLOT = "calibration.png"
CROPS_DIR = "faces"
FORMAT = "smartlock-gallery"
VERSION = 1
_IMAGE_ID = re.compile(r"^[0-9a-f]{8,64}$")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def save_gallery(model_dir: Path, gallery: Gallery) -> None:
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
        "embeddings_sha256": hashlib.sha256(npz).hexdigest(),
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "images": [
            {"image_id": r.image_id, "person": r.person, "source": r.source} for r in gallery.records
        ],
        "calibration": gallery.calibration.to_json(),
    }
    atomic_write(model_dir / EMBEDDINGS_FILE, npz)
    atomic_write(model_dir / METADATA_FILE, json.dumps(metadata, indent=1).encode("utf-8"))


def load_gallery(model_dir: Path) -> Gallery:
    """Read a model folder; ModelError if there is none, ModelCorrupt if it is damaged or inconsistent."""
    model_dir = Path(model_dir)
    meta_path, npz_path = model_dir / METADATA_FILE, model_dir / EMBEDDINGS_FILE
    if not meta_path.is_file():
        raise ModelError(
            f"no trained model in {model_dir} ({METADATA_FILE} is missing): "
            "run `smartlock train -d DATASET -o MODEL_DIR` first"
        )
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelCorrupt(f"{meta_path} is corrupt (not valid JSON): {err}") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelCorrupt(f"{meta_path} is not a smartlock gallery")
    if metadata.get("version") != VERSION:
        raise ModelCorrupt(f"{meta_path} has format version {metadata.get('version')}; this smartlock "
                           f"reads version {VERSION}: retrain with `smartlock train`")
    try:
        npz = npz_path.read_bytes()
    except OSError as err:
        raise ModelCorrupt(f"{npz_path} cannot be read: {err.strerror or err}") from None
    if hashlib.sha256(npz).hexdigest() != metadata.get("embeddings_sha256"):
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


def crop_path(model_dir: Path, image_id: str) -> Path:
    if not _IMAGE_ID.match(image_id):
        raise ValueError(f"bad image id {image_id!r}")
    return Path(model_dir) / CROPS_DIR / f"{image_id}.jpg"
