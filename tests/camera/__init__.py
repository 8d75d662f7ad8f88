"""Tests of the camera part: MJPEG fan-out over video files, image folders and URLs."""
