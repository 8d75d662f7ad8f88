"""The settings models of `smartlock train` and `smartlock classify`: flags, defaults, limits."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from smartlock.cli import build_parser, main
from smartlock.recognition.backends.base import BACKENDS
from smartlock.recognition.settings import BackendName, ClassifySettings, TrainSettings


def test_the_backend_choices_are_the_registry() -> None:
    assert sorted(get_args(BackendName)) == sorted(BACKENDS)


def test_flags_fill_the_models() -> None:
    train = TrainSettings.from_args(build_parser().parse_args(["train", "-d", "photos"]))
    assert train == TrainSettings(dataset=Path("photos"))
    assert (train.backend, train.output, train.prior_odds, train.no_progress) == (
        "arcface", Path("model"), None, False)
    args = build_parser().parse_args(["classify", "a.jpg", "b", "--json", "--threshold", "0.6"])
    classify = ClassifySettings.from_args(args)
    assert (classify.images, classify.as_json, classify.threshold) == ([Path("a.jpg"), Path("b")], True, 0.6)


def test_bad_values_are_refused_naming_the_flag(tmp_path: Path, capsys) -> None:
    assert main(["train", "-d", str(tmp_path), "--prior-odds", "0"]) == 2
    assert "--prior-odds" in capsys.readouterr().err
    assert main(["classify", "x.jpg", "--threshold", "1.5"]) == 2
    assert "--threshold" in capsys.readouterr().err
