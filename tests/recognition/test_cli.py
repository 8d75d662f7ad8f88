"""`smartlock train` and `smartlock classify` end to end, through the real command line entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smartlock.cli import main
from smartlock.recognition.recognizer import Recognizer
from smartlock.recognition.settings import GENERATED_KEY_FILE
from smartlock.service import read_secret, write_secret
from tests.recognition.conftest import load_backend

pytestmark = [pytest.mark.faces, pytest.mark.slow]


@pytest.fixture
def dataset(tmp_path: Path, cast) -> Path:
    """The seed's layout, DATASET/<person>/<photo>, with links to the photos (never copies), plus a
    photo without a face and a file that is no image."""
    root = tmp_path / "images"
    for name, paths in cast.enroll.items():
        (root / name).mkdir(parents=True)
        for path in paths:
            (root / name / path.name).symlink_to(path)
    first = sorted(cast.enroll)[0]
    Image.fromarray(np.full((120, 160, 3), (40, 90, 160), np.uint8)).save(root / first / "sky.jpg")
    (root / first / "notes.txt").write_text("not a photo")
    return root


@pytest.mark.parametrize("backend_name", ["arcface", "dlib"])
def test_train_then_classify(dataset, tmp_path, cast, capsys, backend_name):
    load_backend(backend_name)  # skips when not installed
    model = tmp_path / "model"
    argv = ["train", "-d", str(dataset), "--backend", backend_name, "-o", str(model), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"people: {len(cast.enroll)}" in out
    assert "photos used: 9" in out
    assert "sky.jpg: no face" in out and "notes.txt: not an image file" in out
    assert "leave-one-out identification accuracy" in out
    assert "estimated stranger false-accept rate at confidence 0.8" in out
    assert (model / "gallery.json").is_file() and (model / "gallery.npz").is_file()
    assert (model / "calibration.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Recognizer.load(model, load_backend(backend_name)).backend_name == backend_name

    probes = [p for paths in cast.probes.values() for p in paths[:1]]
    images = [*probes, cast.strangers[0], tmp_path / "missing.jpg"]
    saved = tmp_path / "annotated"
    code = main(["classify", *map(str, images), "--model", str(model), "--json", "--save-dir", str(saved)])
    assert code == 1  # the missing file
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    for line, (name, paths) in zip(lines, cast.probes.items(), strict=False):
        assert line["image"] == str(paths[0])
        top = line["faces"][0]
        assert top["top_prediction"]["label"] == name and top["top_prediction"]["confidence"] >= 0.5
        assert set(top["bounding_box"]) == {"left", "top", "right", "bottom"}
        assert top["all_predictions"] is None
    assert all(face["top_prediction"]["confidence"] < 0.5 for face in lines[len(probes)]["faces"])
    assert "error" in lines[-1]
    written = sorted(p.name for p in saved.iterdir())
    assert written == sorted(f"{p.stem}.jpg" for p in images[:-1])


def test_retraining_replaces_the_model_and_classify_reads_text(dataset, tmp_path, cast, capsys):
    load_backend("arcface")
    model = tmp_path / "model"
    assert main(["train", "-d", str(dataset), "-o", str(model), "--no-progress"]) == 0
    write_secret(model / GENERATED_KEY_FILE, "the-key-the-engine-holds")  # as `smartlock recognition` does
    dropped = sorted(cast.enroll)[-1]
    for link in (dataset / dropped).iterdir():
        link.unlink()
    (dataset / dropped).rmdir()
    assert main(["train", "-d", str(dataset), "-o", str(model), "--no-progress"]) == 0
    assert dropped not in Recognizer.load(model, load_backend("arcface")).people()
    # the retrained model keeps the API key, so the engine and collector still get in
    assert read_secret(model / GENERATED_KEY_FILE) == "the-key-the-engine-holds"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    capsys.readouterr()
    probe = cast.probes[sorted(cast.probes)[0]][0]
    assert main(["classify", str(probe), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{probe}: ") and " face" in out.splitlines()[0]
    assert out.splitlines()[1].split()[:2] == [sorted(cast.probes)[0], "confidence"]


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["train", "-d", str(tmp_path / "nowhere"), "-o", str(tmp_path / "m")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("years of work")
    assert main(["train", "-d", str(tmp_path), "-o", str(tmp_path / "precious")]) == 2
    assert "not a smartlock model folder" in capsys.readouterr().err
    assert (tmp_path / "precious" / "thesis.txt").read_text() == "years of work"
    assert main(["classify", "x.jpg", "--model", str(tmp_path / "no-model")]) == 2
    assert "smartlock train" in capsys.readouterr().err


def test_console_command_help():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-m", "smartlock", "classify", "--help"], capture_output=True,
                            text=True, timeout=60, env=env, check=False)
    assert result.returncode == 0 and "--save-dir" in result.stdout
