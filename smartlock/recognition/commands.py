"""The `smartlock train` and `smartlock classify` sub-commands (argument parsing; work in training.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from smartlock.recognition.backends.base import BACKENDS, DEFAULT_BACKEND

DEFAULT_MODEL_DIR = Path("model")


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="enroll a folder of people's photos into a recognition model",
        description=(
            "Enroll every person of DATASET (one folder per person: DATASET/<person>/<photo>) and fit the "
            "confidence calibration. Prints the leave-one-out accuracy and the estimated stranger "
            "false-accept rate, and writes calibration.png next to the model. The arcface backend's "
            "weights (InsightFace) are for non-commercial research only; dlib's are public domain."
        ),
    )
    train.add_argument("-d", "--dataset", required=True, type=Path, metavar="DATASET",
                       help="folder with one sub-folder of photos per person")
    train.add_argument("--backend", choices=sorted(BACKENDS), default=DEFAULT_BACKEND,
                       help=f"recognition backend (default: {DEFAULT_BACKEND})")
    train.add_argument("-o", "--output", type=Path, default=DEFAULT_MODEL_DIR, metavar="MODEL_DIR",
                       help=f"model folder to write (default: {DEFAULT_MODEL_DIR}/); replaced atomically")
    train.add_argument("--prior-odds", type=_positive, default=None, metavar="ODDS",
                       help="prior odds that a face at the door is someone enrolled rather than a stranger "
                            "(default 0.25, i.e. 1 in 5; lower is stricter)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    classify = subparsers.add_parser(
        "classify",
        help="recognise the faces in image files",
        description="Recognise the faces in each IMAGE (files or folders) with a trained model.",
    )
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files or folders")
    classify.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, metavar="MODEL_DIR",
                          help=f"trained model folder (default: {DEFAULT_MODEL_DIR}/)")
    classify.add_argument("--json", action="store_true",
                          help='one JSON line per image: {"image": PATH, "faces": [...]} as the API returns')
    classify.add_argument("--all-predictions", action="store_true",
                          help="include every enrolled person's confidence (all_predictions)")
    classify.add_argument("--save-dir", type=Path, metavar="DIR",
                          help="write each image with boxes and labels drawn into DIR")
    classify.add_argument("--threshold", type=float, default=0.8,
                          help="confidence from which a face is drawn as recognised (default 0.8)")
    classify.set_defaults(func=_classify)


def _train(args: argparse.Namespace) -> int:
    from smartlock.recognition.training import train

    options = {} if args.prior_odds is None else {"prior_odds": args.prior_odds}
    return train(args.dataset, args.output, backend_name=args.backend, progress=not args.no_progress,
                 **options)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _classify(args: argparse.Namespace) -> int:
    from smartlock.recognition.training import classify

    return classify(args.images, args.model, as_json=args.json, save_dir=args.save_dir,
                    threshold=args.threshold, all_predictions=args.all_predictions)
