"""An optional user-supplied ONNX presentation-attack classifier (``--liveness-model FILE``).

Nothing is downloaded and nothing is required. The model's contract:

- input: one tensor ``(1, 3, H, W)`` float32, RGB, values scaled to [0, 1]: the face box enlarged by
  ``context`` (default 1.5 times its size, about the centre, clipped to the crop) and resized to H x W
  (read from the model's input shape; 80 x 80 when the shape is dynamic);
- output: the first output, either one value (the probability that the face is live) or two or more values
  per face, of which index ``live_index`` (default 1) is "live" (softmax applied when they do not already
  sum to 1).

The cue averages the probability over the last few crops: ≥ ``live_above`` → live evidence, ≤
``attack_below`` → attack, else abstain. onnxruntime is imported only when a model is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from smartlock.engine.liveness.base import CueResult, abstain, recent, spread_evenly
from smartlock.engine.tracks import Observation
from smartlock.errors import ConfigError, DependencyMissing

NAME = "model"


@dataclass(frozen=True)
class ModelSettings:
    window: float = 1.0
    samples: int = 3
    context: float = 1.5
    live_index: int = 1
    live_above: float = 0.9
    attack_below: float = 0.1
    min_face: float = 40.0


class Session(Protocol):
    def get_inputs(self) -> list[Any]: ...
    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[Any]: ...


def load_session(path: str | Path) -> Session:
    """An onnxruntime session for the model file (ConfigError if it is missing or unusable)."""
    try:
        import onnxruntime
    except ImportError:
        raise DependencyMissing("onnxruntime", "--liveness-model", "pip install onnxruntime") from None
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--liveness-model: no such file: {file}")
    try:
        return onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own untyped errors for unusable files
        raise ConfigError(f"--liveness-model: onnxruntime cannot load {file}: {err}") from err


class ModelCue:
    """Runs the classifier on a track's recent crops."""

    def __init__(self, session: Session, settings: ModelSettings | None = None) -> None:
        self.session = session
        self.settings = settings or ModelSettings()
        spec = session.get_inputs()[0]
        self.input_name = spec.name
        shape = list(spec.shape)
        if len(shape) != 4 or shape[1] not in (3, "3"):
            raise ConfigError(f"--liveness-model: input must be (1, 3, H, W), the model has {shape}")
        self.size = tuple(v if isinstance(v, int) and v > 0 else 80 for v in shape[2:4])

    def face_input(self, obs: Observation) -> np.ndarray | None:
        """The model's input for one observation (1, 3, H, W) float32 RGB in [0, 1]."""
        if obs.crop is None:
            return None
        from smartlock.camera.imaging import load_cv2

        cv2 = load_cv2()
        x0, y0, scale = obs.crop_origin
        left, top, right, bottom = obs.box
        cx, cy = ((left + right) / 2 - x0) * scale, ((top + bottom) / 2 - y0) * scale
        half = max(right - left, bottom - top) * scale * self.settings.context / 2
        height, width = obs.crop.shape[:2]
        x_lo, t = max(0, int(cx - half)), max(0, int(cy - half))
        r, b = min(width, int(cx + half)), min(height, int(cy + half))
        if r - x_lo < 4 or b - t < 4:
            return None
        face = cv2.resize(obs.crop[t:b, x_lo:r], (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        rgb = face[:, :, ::-1].astype(np.float32) / 255.0
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])

    def probability(self, blob: np.ndarray) -> float:
        output = np.asarray(self.session.run(None, {self.input_name: blob})[0], dtype=np.float64).reshape(-1)
        if output.size == 1:
            return float(np.clip(output[0], 0.0, 1.0))
        if not (np.all(output >= 0) and abs(float(output.sum()) - 1.0) < 1e-3):
            output = np.exp(output - output.max())
            output /= output.sum()
        return float(output[min(self.settings.live_index, output.size - 1)])

    def judge(self, observations: Sequence[Observation]) -> CueResult:
        s = self.settings
        window = [obs for obs in recent(observations, s.window) if obs.crop is not None
                  and min(obs.detection.width, obs.detection.height) >= s.min_face]
        blobs = [blob for obs in spread_evenly(window, s.samples)
                 if (blob := self.face_input(obs)) is not None]
        if not blobs:
            return abstain(NAME, f"no face crop of {s.min_face:.0f}+ px")
        live = float(np.mean([self.probability(blob) for blob in blobs]))
        detail = f"live probability {live:.2f} over {len(blobs)} crops"
        score = 2 * live - 1
        if live >= s.live_above:
            return CueResult(NAME, score, "live", detail)
        if live <= s.attack_below:
            return CueResult(NAME, score, "attack", detail)
        return CueResult(NAME, score, "abstain", detail)
