"""What `smartlock train` and `smartlock classify` do: enroll a photo folder, report, recognise files."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from smartlock.errors import BadImageError, ConfigError, GalleryError
from smartlock.recognition import store
from smartlock.recognition.backends.base import get_backend
from smartlock.recognition.gallery import DEFAULT_PRIOR_ODDS
from smartlock.recognition.images import decode_image
from smartlock.recognition.recognizer import EnrollOutcome, RecognizedFace, Recognizer, validate_name
from smartlock.recognition.settings import GENERATED_KEY_FILE
from smartlock.service.secrets import write_secret

MAX_WARNINGS = 20
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
LICENCES = {
    "arcface": "arcface uses InsightFace's SCRFD + w600k_mbf weights: non-commercial research use only "
    "(SMARTLOCK_ARCFACE_DETECTOR/_EMBEDDER select your own licensed ONNX files)",
    "dlib": "dlib uses dlib's public-domain weights (face-recognition-models)",
}


def scan_dataset(dataset: Path) -> tuple[dict[str, list[Path]], list[tuple[Path, str]]]:
    """Photos per person folder, and files skipped before embedding (with the reason)."""
    if not dataset.is_dir():
        raise ConfigError(f"dataset {dataset} is not a folder")
    people: dict[str, list[Path]] = {}
    skipped: list[tuple[Path, str]] = []
    for entry in sorted(dataset.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            skipped.append((entry, "not inside a person's folder"))
            continue
        try:
            validate_name(entry.name)
        except GalleryError as err:
            skipped.append((entry, str(err)))
            continue
        photos = []
        for path in sorted(entry.rglob("*")):
            if path.is_dir() or path.name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                photos.append(path)
            else:
                skipped.append((path, "not an image file"))
        if photos:
            people[entry.name] = photos
        else:
            skipped.append((entry, "no photos"))
    if not people:
        raise ConfigError(f"no person folders with photos in {dataset} (expected {dataset}/<person>/<photo>)")
    return people, skipped


def train(dataset: Path, output: Path, backend_name: str = "arcface", progress: bool = True,
          prior_odds: float = DEFAULT_PRIOR_ODDS) -> int:
    output = Path(output)
    if output.exists() and (not output.is_dir() or (
            any(output.iterdir()) and not (output / store.METADATA_FILE).exists())):
        raise ConfigError(f"{output} exists and is not a smartlock model folder: choose another -o MODEL_DIR")
    people, skipped = scan_dataset(Path(dataset))
    total = sum(len(photos) for photos in people.values())
    print(f"backend: {LICENCES.get(backend_name, backend_name)}")
    backend = get_backend(backend_name)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.training-", dir=output.parent))
    try:
        recognizer = Recognizer.create(work, backend, prior_odds=prior_odds)
        from tqdm import tqdm

        with tqdm(total=total, unit="photo", desc="embedding", disable=not progress, file=sys.stderr) as bar:
            batches = {name: [(str(path), path) for path in photos] for name, photos in people.items()}
            outcomes = recognizer.enroll_many(batches, multiple_faces="largest",
                                              progress=lambda _name, _file: bar.update(1))
        _report(recognizer, outcomes, skipped)
        if recognizer.people():
            write_calibration_plot(recognizer, work / store.CALIBRATION_PLOT)
        _keep_api_key(output, work)
        _replace_dir(work, output)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"model written to {output}/ ({store.METADATA_FILE}, {store.EMBEDDINGS_FILE}, "
          f"{store.CALIBRATION_PLOT})")
    return 0 if recognizer.people() else 1


def _report(recognizer: Recognizer, outcomes: dict[str, list[EnrollOutcome]],
            skipped: list[tuple[Path, str]]) -> None:
    used = sum(o.enrolled for items in outcomes.values() for o in items)
    every = [o for items in outcomes.values() for o in items]
    warnings = [(o.filename, o.reason) for o in every if o.enrolled and o.reason]
    refused = [(o.filename, o.reason) for o in every if not o.enrolled]
    refused += [(str(path), reason) for path, reason in skipped]
    enrolled_people = recognizer.people()
    print(f"people: {len(enrolled_people)}   photos used: {used}   skipped: {len(refused)}")
    for name, items in outcomes.items():
        if not any(o.enrolled for o in items):
            print(f"  not enrolled: {name} (no usable photo)")
    for filename, reason in refused:
        print(f"  skipped {filename}: {reason}")
    for filename, reason in warnings[:MAX_WARNINGS]:
        print(f"  warning {filename}: {reason}")
    if len(warnings) > MAX_WARNINGS:
        print(f"  ... and {len(warnings) - MAX_WARNINGS} more photos with several faces (used the largest)")
    cal = recognizer.calibration()
    accuracy = cal["loo_accuracy"]
    if accuracy is None:
        print("leave-one-out accuracy: n/a (needs people with 2 or more photos)")
    else:
        print(f"leave-one-out identification accuracy: {accuracy:.2%} ({cal['n_genuine']} photos); "
              f"recognised with confidence >= 0.8: {cal['genuine_accept_at'].get('0.8', 0):.2%}")
    far = cal["false_accept_at"].get("0.8")
    if far is None:
        print("estimated stranger false-accept rate at confidence 0.8: n/a (needs 2 or more people)")
    else:
        trials = recognizer.gallery.calibration.stats.get("stranger_trials", 0)
        print(f"estimated stranger false-accept rate at confidence 0.8: {far:.2%} "
              f"(each of {trials} photos matched as a stranger against the other people)")
    print(f"calibration: {cal['method']}, {describe_calibration(cal)}")
    if cal["threshold_scores"]:
        print(f"a lone match needs score {cal['threshold_scores']['0.8']:.3f} for confidence 0.8 "
              f"with {cal['people']} people enrolled")


def describe_calibration(cal: dict) -> str:
    return ", ".join(f"{key} {value:.4g}" for key, value in cal.get("parameters", {}).items())


def _keep_api_key(old: Path, new: Path) -> None:
    """A retrained model keeps the key `smartlock recognition` generated in the old folder, so that the
    engine and collector holding it still get in."""
    key = old / GENERATED_KEY_FILE
    if key.is_file():
        write_secret(new / GENERATED_KEY_FILE, key.read_text(encoding="utf-8").strip())


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``: the old folder is moved aside first and removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_calibration_plot(recognizer: Recognizer, path: Path) -> None:
    """Histogram of genuine (leave-one-out) and impostor scores, with the 0.8 threshold marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    cal = recognizer.calibration()
    genuine = np.asarray(cal["genuine_scores"])
    impostor = np.asarray(cal["impostor_scores"])
    figure = Figure(figsize=(8, 4.5), dpi=100)
    axes = figure.subplots()
    values = np.concatenate([genuine, impostor]) if len(genuine) + len(impostor) else np.zeros(1)
    bins = np.linspace(min(values.min(), 0.0), max(values.max(), 1.0), 60).tolist()
    if len(impostor):
        axes.hist(impostor, bins=bins, density=True, alpha=0.6, color="tab:red",
                  label=f"impostor (photo vs another person, n={cal['n_impostor']:,})")
    if len(genuine):
        axes.hist(genuine, bins=bins, density=True, alpha=0.6, color="tab:green",
                  label=f"genuine (photo vs rest of its person, n={len(genuine):,})")
    for level, style in (("0.5", ":"), ("0.8", "-"), ("0.9", "--")):
        score = cal["threshold_scores"].get(level)
        if score is not None:
            axes.axvline(score, color="black", linestyle=style,
                         label=f"confidence {level}: score {score:.3f}")
    axes.set_yscale("log")
    axes.set_xlabel(f"similarity score ({cal['backend']})")
    axes.set_ylabel("density (log scale)")
    axes.set_title(f"{cal['people']} people, {cal['images']} photos: genuine vs impostor scores")
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)


# -- classify ------------------------------------------------------------------------------------------


def _expand(images: list[Path]) -> list[Path]:
    paths: list[Path] = []
    for item in images:
        if item.is_dir():
            paths.extend(p for p in sorted(item.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(item)
    return paths


def classify(images: list[Path], model_dir: Path, as_json: bool = False, save_dir: Path | None = None,
             threshold: float = 0.8, all_predictions: bool = False) -> int:
    recognizer = Recognizer.load(Path(model_dir))
    failures = 0
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)
    for path in _expand(images):
        try:
            data = path.read_bytes()
        except OSError as err:
            failures += 1
            _print_error(path, f"cannot read: {err.strerror or err}", as_json)
            continue
        try:
            image = decode_image(data)
        except BadImageError as err:
            failures += 1
            _print_error(path, str(err), as_json)
            continue
        faces = recognizer.recognize(image)
        if as_json:
            answer = [face.to_face(all_predictions).model_dump() for face in faces]
            print(json.dumps({"image": str(path), "faces": answer}), flush=True)
        else:
            _print_faces(path, faces, threshold, all_predictions)
        if save_dir is not None:
            _save_annotated(image, faces, save_dir / f"{path.stem}.jpg", threshold)
    return 1 if failures else 0


def _print_error(path: Path, message: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"image": str(path), "faces": [], "error": message}), flush=True)
    else:
        print(f"{path}: error: {message}", file=sys.stderr)


def _print_faces(path: Path, faces: list[RecognizedFace], threshold: float, all_predictions: bool) -> None:
    print(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
    for face in faces:
        top = face.top
        box = ", ".join(f"{v:.0f}" for v in face.box)
        if top is None:
            print(f"  unknown (nobody enrolled)  box [{box}]")
            continue
        verdict = "" if top.confidence >= threshold else f"  (below {threshold:g}: not recognised)"
        print(f"  {top.label}  confidence {top.confidence:.3f}  score {top.score:.3f}  box [{box}]{verdict}")
        if all_predictions:
            for prediction in face.predictions[1:]:
                print(f"      {prediction.label}  {prediction.confidence:.3f}")


def _save_annotated(image: np.ndarray, faces: list[RecognizedFace], path: Path, threshold: float) -> None:
    import cv2

    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    for face in faces:
        left, top, right, bottom = (round(v) for v in face.box)
        best = face.top
        if best is None:
            known, text = False, "unknown"
        elif best.confidence >= threshold:
            known, text = True, f"{best.label} {best.confidence:.2f}"
        else:
            known, text = False, f"unknown ({best.label} {best.confidence:.2f})"
        color = (60, 180, 60) if known else (40, 40, 220)
        cv2.rectangle(canvas, (left, top), (right, bottom), color, thickness)
        scale = 0.4 * thickness
        (width, height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        y = max(top, height + baseline + 2)
        cv2.rectangle(canvas, (left, y - height - baseline - 2), (left + width + 2, y), color, -1)
        cv2.putText(canvas, text, (left + 1, y - baseline - 1), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thickness, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if ok:
        store.atomic_write(path, encoded.tobytes())

