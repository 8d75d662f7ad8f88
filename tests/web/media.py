"""Test inputs built from ../shared/faces: a looping video of one person's photo for the camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FRAME_SIZE = (640, 360)


def person_video(photo: Path, path: Path, seconds: float = 4.0, fps: float = 10.0) -> Path:
    """The photo on a grey wall, drifting a few pixels left and right, with a frame counter in the corner
    (so consecutive frames differ); mp4v, written with OpenCV."""
    import cv2

    image = cv2.imread(str(photo))
    if image is None:
        raise ValueError(f"cannot read {photo}")
    width, height = FRAME_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, FRAME_SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v videos here")
    frames = round(seconds * fps)
    for index in range(frames):
        canvas = np.full((height, width, 3), 96, np.uint8)
        shift = round(12 * np.sin(2 * np.pi * index / frames))
        top = (height - image.shape[0]) // 2
        left = (width - image.shape[1]) // 2 + shift
        canvas[top : top + image.shape[0], left : left + image.shape[1]] = image
        cv2.putText(canvas, f"frame {index:03d}", (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
        writer.write(canvas)
    writer.release()
    return path
