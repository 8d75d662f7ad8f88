"""`smartlock engine` and `smartlock collect` accept the seed's command lines, and refuse bad values early."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from smartlock.cli import build_parser, main
from smartlock.engine.commands import configure_logging
from smartlock.engine.liveness.frame import FrameSettings

SEED_ENGINE = ["engine", "--threshold", "0.8", "--camera-url", "http://CAMERA_IP/stream.mjpg",
               "--face-recognition-api-url", "http://FACE_RECOGNITION_IP:5000/face-recognition",
               "--door-api-url", "http://DOOR_IP/unlock"]
SEED_COLLECT = ["collect", "-min", "0.6", "-max", "0.8", "--camera-url", "http://CAMERA_IP/stream.mjpg",
                "--face-recognition-api-url", "http://FACE_RECOGNITION_IP:5000/face-recognition"]


def test_the_seed_engine_command_line_parses_with_the_seed_defaults() -> None:
    args = build_parser().parse_args([*SEED_ENGINE, "--fps", "2", "--haar-file-path", "h.xml",
                                      "--log-path", "log", "--block-time", "6"])
    assert (args.threshold, args.fps, args.block_time, args.log_path) == (0.8, 2.0, 6.0, Path("log"))
    assert args.haar_file_path == "h.xml" and args.model is None
    defaults = build_parser().parse_args(SEED_ENGINE)
    assert (defaults.min_frames, defaults.window, defaults.mirror) == (2, 1.5, True)
    assert defaults.webhook_url is None
    assert defaults.log_path == Path("log") and defaults.block_time == 6


def test_the_seed_collector_command_line_parses() -> None:
    args = build_parser().parse_args([*SEED_COLLECT, "--fps", "3", "--log-path", "data"])
    assert (args.min_confidence, args.max_confidence) == (0.6, 0.8)
    assert (args.fps, args.log_path) == (3.0, Path("data"))


def test_model_and_api_url_exclude_each_other(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*SEED_ENGINE, "--model", "model"])
    with pytest.raises(SystemExit):  # and one of them is needed
        build_parser().parse_args(["engine", "--camera-url", "x", "--door-api-url", "y"])
    args = build_parser().parse_args(["engine", "--camera-url", "x", "--door-api-url", "y", "--model", "m"])
    assert args.model == Path("m") and args.face_recognition_api_url is None


@pytest.mark.parametrize("extra", [["--min-frames", "0"], ["--threshold", "1.5"], ["--min-frames", "3",
                                                                                  "--window", "0"]])
def test_bad_engine_settings_fail_before_anything_starts(tmp_path, capsys, extra) -> None:
    code = main([*SEED_ENGINE, "--log-path", str(tmp_path / "log"), *extra])
    assert code == 2
    assert "smartlock engine: error:" in capsys.readouterr().err
    assert not (tmp_path / "log").exists()


def test_bad_band_fails_before_anything_starts(tmp_path, capsys) -> None:
    args = ["collect", "-min", "0.9", "-max", "0.5", "--camera-url", "x", "--face-recognition-api-url", "y",
            "--log-path", str(tmp_path / "log")]
    assert main(args) == 2
    assert "min-confidence" in capsys.readouterr().err


def test_missing_haar_file_is_a_clear_error(tmp_path, capsys) -> None:
    code = main([*SEED_ENGINE, "--log-path", str(tmp_path), "--haar-file-path", str(tmp_path / "none.xml"),
                 "--liveness", "off"])
    assert code == 2
    assert "Haar cascade file not found" in capsys.readouterr().err


def test_the_seeds_haar_cascade_needs_liveness_off(tmp_path, capsys) -> None:
    """Liveness follows each face's landmarks, which only the default gate gives."""
    code = main([*SEED_ENGINE, "--log-path", str(tmp_path), "--haar-file-path", str(tmp_path / "none.xml")])
    assert code == 2
    assert "--liveness off" in capsys.readouterr().err


def test_logs_go_to_stdout_and_log_txt(tmp_path, capsys) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(tmp_path / "log")
        logging.getLogger("smartlock.engine").info("Door unlocked")
        for handler in root.handlers:
            handler.flush()
        assert "Door unlocked" in (tmp_path / "log" / "log.txt").read_text()
        assert "Door unlocked" in capsys.readouterr().out
    finally:
        for handler in root.handlers:
            if handler not in saved[0]:
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_command_lines_fill_the_settings_models(tmp_path) -> None:
    from smartlock.engine.settings import CollectorSettings, EngineSettings

    args = build_parser().parse_args([*SEED_ENGINE, "--min-frames", "3", "--no-mirror",
                                      "--face-recognition-api-key-file", str(tmp_path / "key"),
                                      "--camera-token-file", str(tmp_path / "token")])
    settings = EngineSettings.from_args(args)
    assert (settings.threshold, settings.min_frames, settings.mirror) == (0.8, 3, False)
    assert settings.block_time == 6.0
    assert settings.face_recognition_api_key_file == tmp_path / "key"
    assert settings.camera_token_file == tmp_path / "token"
    again = EngineSettings.from_args(build_parser().parse_args(["engine", *settings.to_argv()]))
    assert again == settings  # `up` can hand the same settings to a child as flags
    collect = CollectorSettings.from_args(build_parser().parse_args(SEED_COLLECT))
    assert (collect.min_confidence, collect.max_confidence, collect.fps) == (0.6, 0.8, 2.0)


def test_the_defaults_are_importable_from_the_commands_module() -> None:
    from smartlock.engine import commands, settings

    assert commands.DEFAULT_THRESHOLD == settings.DEFAULT_THRESHOLD == 0.8
    assert settings.EngineSettings.model_fields["threshold"].default == commands.DEFAULT_THRESHOLD


def test_api_key_and_api_key_file_exclude_each_other(tmp_path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*SEED_ENGINE, "--face-recognition-api-key", "k",
                                   "--face-recognition-api-key-file", str(tmp_path / "key")])


@pytest.mark.parametrize("flag", ["--face-recognition-api-key-file", "--camera-token-file"])
def test_a_secret_file_others_can_read_is_refused_before_anything_starts(tmp_path, capsys, flag) -> None:
    secret = tmp_path / "secret"
    secret.write_text("k\n")
    secret.chmod(0o644)
    code = main([*SEED_ENGINE, "--log-path", str(tmp_path / "log"), flag, str(secret)])
    assert code == 2
    assert "chmod 600" in capsys.readouterr().err
    assert not (tmp_path / "log").exists()


def test_retention_flags_parse_round_trip_and_refuse_nonsense(tmp_path, capsys) -> None:
    from smartlock.engine.settings import CollectorSettings, EngineSettings

    defaults = EngineSettings.from_args(build_parser().parse_args(SEED_ENGINE))
    assert (defaults.keep_days, defaults.keep_unlocks, defaults.log_max_mb, defaults.log_backups) == \
        (30.0, 1000, 10.0, 5)
    args = build_parser().parse_args([*SEED_ENGINE, "--keep-days", "7", "--keep-unlocks", "50",
                                      "--log-max-mb", "2.5", "--log-backups", "3"])
    settings = EngineSettings.from_args(args)
    assert (settings.keep_days, settings.keep_unlocks, settings.log_max_mb, settings.log_backups) == \
        (7.0, 50, 2.5, 3)
    assert EngineSettings.from_args(build_parser().parse_args(["engine", *settings.to_argv()])) == settings
    collect = CollectorSettings.from_args(build_parser().parse_args([*SEED_COLLECT, "--keep-frames", "300",
                                                                     "--keep-days", "14"]))
    assert (collect.keep_frames, collect.keep_days, collect.log_max_mb) == (300, 14.0, 10.0)
    bad_values = (["--keep-days", "0"], ["--keep-unlocks", "0"], ["--log-max-mb", "0"],
                  ["--log-backups", "-1"])
    for bad in bad_values:
        assert main([*SEED_ENGINE, "--log-path", str(tmp_path / "log"), *bad]) == 2
        assert bad[0] in capsys.readouterr().err
    assert not (tmp_path / "log").exists()


@pytest.mark.parametrize(("flag", "enclosure"), [([], FrameSettings().enclosure),
                                                 (["--liveness-still-frame", "off"], 0.0)])
def test_liveness_still_frame_off_drops_only_the_still_frame_rule(tmp_path, flag, enclosure) -> None:
    from smartlock.engine.assembly import build_liveness
    from smartlock.engine.settings import EngineSettings

    args = build_parser().parse_args([*SEED_ENGINE, "--log-path", str(tmp_path), *flag])
    settings = EngineSettings.from_args(args)
    check, _lockout = build_liveness(settings)
    assert check is not None and "frame" in check.judge.cue_names
    assert check.judge.settings.frame.enclosure == enclosure
