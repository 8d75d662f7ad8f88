"""Shared by the benchmark scripts: the face photos, and embeddings cached per backend and model files."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from smartlock.config import faces_dir  # noqa: E402
from smartlock.recognition.backends.base import BACKENDS, Backend, get_backend  # noqa: E402
from smartlock.recognition.images import load_image  # noqa: E402


def require_faces() -> Path:
    path = faces_dir()
    if path is None:
        sys.exit("face photos not found: set SMARTLOCK_FACES_DIR or put them at ../shared/faces")
    return path


def dataset(root: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """people/<name>/<photo> as {name: sorted photos}, and every photo under strangers/."""
    people = {
        folder.name: sorted(p for p in folder.iterdir() if p.is_file())
        for folder in sorted((root / "people").iterdir())
        if folder.is_dir()
    }
    strangers = sorted(p for p in (root / "strangers").rglob("*") if p.is_file())
    return people, strangers


def split_people(names: list[str]) -> tuple[list[str], list[str]]:
    """The tune / report halves of the people, as accuracy.py --holdout uses them: even positions of the
    sorted names (A) to tune on, odd positions (B) to report on."""
    ordered = sorted(names)
    return ordered[0::2], ordered[1::2]


def installed_backends(wanted: list[str] | None = None) -> list[str]:
    names = wanted or list(BACKENDS)
    usable = []
    for name in names:
        try:
            get_backend(name)
        except ImportError as err:
            print(f"skipping backend {name}: {err}", file=sys.stderr)
            continue
        usable.append(name)
    return usable


class EmbeddingCache:
    """Every face of each photo (box + embedding), cached in benchmarks/results/ by backend + hashes."""

    def __init__(self, backend: Backend, root: Path) -> None:
        self.backend = backend
        self.root = root
        key = json.dumps([backend.name, backend.model_hashes(), _options(backend)], sort_keys=True)
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.path = RESULTS / f"faces-{backend.name}-{digest}.npz"
        self.faces: dict[str, tuple[np.ndarray, np.ndarray, tuple[int, int]]] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as data:
                names = [str(v) for v in data["paths"]]
                owner, boxes, vectors = data["owner"], data["boxes"], data["embeddings"]
                shapes = data["shapes"]
            for index, name in enumerate(names):
                rows = owner == index
                shape = (int(shapes[index, 0]), int(shapes[index, 1]))
                self.faces[name] = (boxes[rows], vectors[rows], shape)

    def ensure(self, paths: list[Path], progress: bool = True) -> None:
        missing = [p for p in paths if self._key(p) not in self.faces]
        if not missing:
            return
        from tqdm import tqdm

        try:
            for count, path in enumerate(tqdm(missing, desc=f"embedding ({self.backend.name})", unit="photo",
                                              disable=not progress), start=1):
                image = load_image(path)
                found = self.backend.detect_and_embed(image)
                boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)
                vectors = np.array([f.embedding for f in found], np.float32)
                vectors = vectors.reshape(-1, self.backend.embedding_size)
                self.faces[self._key(path)] = (boxes, vectors, image.shape[:2])
                if count % 500 == 0:
                    self._save()
        finally:
            self._save()

    def _key(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def select(self, paths: list[Path], which: str) -> tuple[np.ndarray, np.ndarray]:
        """One embedding per photo: the ``largest`` face (what `smartlock train` enrolls) or the
        ``central`` one (LFW's subject: its photos are centred on the named person). NaN: no face."""
        self.ensure(paths)
        vectors = np.full((len(paths), self.backend.embedding_size), np.nan, np.float32)
        counts = np.zeros(len(paths), np.int32)
        for row, path in enumerate(paths):
            boxes, embeddings, (height, width) = self.faces[self._key(path)]
            counts[row] = len(boxes)
            if not len(boxes):
                continue
            if which == "largest":
                index = int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])))
            else:
                centers = (boxes[:, :2] + boxes[:, 2:]) / 2 - np.array([width / 2, height / 2])
                index = int(np.argmin((centers**2).sum(1)))
            vectors[row] = embeddings[index]
        return vectors, counts

    def _save(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        names = list(self.faces)
        owner = np.concatenate([np.full(len(self.faces[n][0]), i, np.int32) for i, n in enumerate(names)])
        boxes = np.concatenate([self.faces[n][0] for n in names])
        vectors = np.concatenate([self.faces[n][1] for n in names])
        shapes = np.array([self.faces[n][2] for n in names], np.int32).reshape(-1, 2)
        temp = self.path.with_suffix(".tmp.npz")
        np.savez(temp, paths=np.array(names, dtype=str), owner=owner, boxes=boxes, embeddings=vectors,
                 shapes=shapes)
        temp.replace(self.path)


def _options(backend: Backend) -> dict:
    """Settings that change embeddings (so a cache made with other settings is not reused)."""
    keys = ("detection_size", "min_detection_size", "detection_threshold", "min_face", "upsample", "version",
            "prelu_rewritten")
    return {k: getattr(backend, k) for k in keys if hasattr(backend, k)}
