"""The `smartlock train` and `smartlock classify` sub-commands (settings: settings.py; work: training.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from smartlock.recognition.settings import DEFAULT_MODEL_DIR, ClassifySettings, TrainSettings

__all__ = ["DEFAULT_MODEL_DIR", "register"]


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
    TrainSettings.add_option(train, "dataset", metavar="DATASET")
    TrainSettings.add_option(train, "backend")
    TrainSettings.add_option(train, "output", metavar="MODEL_DIR")
    TrainSettings.add_option(train, "prior_odds", metavar="ODDS")
    TrainSettings.add_option(train, "no_progress")
    train.set_defaults(func=_train)

    classify = subparsers.add_parser(
        "classify",
        help="recognise the faces in image files",
        description="Recognise the faces in each IMAGE (files or folders) with a trained model.",
    )
    # positional, so not an add_option flag; its help is still the field's
    classify.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                          help=ClassifySettings.model_fields["images"].description)
    ClassifySettings.add_option(classify, "model", metavar="MODEL_DIR")
    ClassifySettings.add_option(classify, "as_json")
    ClassifySettings.add_option(classify, "all_predictions")
    ClassifySettings.add_option(classify, "save_dir", metavar="DIR")
    ClassifySettings.add_option(classify, "threshold")
    classify.set_defaults(func=_classify)


def _train(args: argparse.Namespace) -> int:
    from smartlock.recognition.training import train

    settings = TrainSettings.from_args(args)
    options = {} if settings.prior_odds is None else {"prior_odds": settings.prior_odds}
    return train(settings.dataset, settings.output, backend_name=settings.backend,
                 progress=not settings.no_progress, **options)


def _classify(args: argparse.Namespace) -> int:
    from smartlock.recognition.training import classify

    settings = ClassifySettings.from_args(args)
    return classify(settings.images, settings.model, as_json=settings.as_json, save_dir=settings.save_dir,
                    threshold=settings.threshold, all_predictions=settings.all_predictions)
