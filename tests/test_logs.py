"""One redaction for every part: secrets quoted in URLs never reach a log line."""

from __future__ import annotations

import logging

import pytest

from smartlock.logs import RedactTokens, redact_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://cam/stream.mjpg?token=abc&x=1", "http://cam/stream.mjpg?token=***&x=1"),
        ("GET /people?api_key=k1 HTTP/1.1", "GET /people?api_key=*** HTTP/1.1"),
        ("rtsp://admin:hunter2@10.0.0.8:554/live", "rtsp://admin:***@10.0.0.8:554/live"),
        ("cannot open http://c/s?a=1&TOKEN=t: refused", "cannot open http://c/s?a=1&TOKEN=***: refused"),
        ("http://cam/stream.mjpg?monkey=1", "http://cam/stream.mjpg?monkey=1"),
        ("http://cam/stream.mjpg", "http://cam/stream.mjpg"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_the_filter_masks_arguments_too() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '"%s %s"', ("GET", "/s?token=x"),
                               None)
    assert RedactTokens().filter(record)
    assert record.getMessage() == '"GET /s?token=***"'
