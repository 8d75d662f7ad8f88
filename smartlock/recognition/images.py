"""Image bytes in, RGB uint8 arrays out: EXIF orientation, gray/RGBA/16-bit modes, size limits."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from smartlock.errors import BadImageError

DEFAULT_MAX_PIXELS = 40_000_000


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes (JPEG, PNG, WebP, BMP, TIFF, GIF...) into an (H, W, 3) RGB uint8 array.

    EXIF orientation is applied; gray, palette, RGBA and 16-bit images are converted. Raises
    BadImageError for empty, truncated or unknown data and for images over ``max_pixels``.
    """
    if not data:
        raise BadImageError("empty image")
    try:
        # Pillow's own bomb check (a warning over Image.MAX_IMAGE_PIXELS, 89 M, an error over twice that)
        # only fires for sizes the default limit below refuses anyway. It is not silenced with
        # warnings.catch_warnings(): that swaps process-wide state and is not thread-safe.
        image: Image.Image = Image.open(io.BytesIO(data))
        width, height = image.size
        if width <= 0 or height <= 0:
            raise BadImageError(f"image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise BadImageError(f"image too large: {width}x{height} is over {max_pixels:,} pixels")
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError("not an image (unknown or unsupported format)") from None
    except Image.DecompressionBombError as err:
        raise BadImageError(f"image too large: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        # Pillow reports truncated or damaged files as OSError ("image file is truncated").
        raise BadImageError(f"image is damaged or truncated: {err}") from None


def _to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit integer) gray: keep the top 8 bits of the 16-bit range.
        values = np.asarray(image).astype(np.int64)
        if mode == "I" and values.max(initial=0) > 65535:
            values = values * 255 // max(int(values.max()), 1)
        else:
            values = values >> 8
        gray = np.clip(values, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = np.where(np.isfinite(values), values, 0.0)  # NaN and inf pixels become black
        top = float(values.max(initial=0.0))
        scale = 255.0 if top <= 1.0 else 255.0 / top
        gray = np.clip(values * scale, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent areas become white rather than whatever colour hides under alpha 0.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode an image file; BadImageError (naming the file) if it is missing or unusable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BadImageError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        return decode_image(data, max_pixels=max_pixels)
    except BadImageError as err:
        raise BadImageError(f"{path}: {err}") from None


def encode_jpeg_rgb(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an (H, W, 3) RGB uint8 array (or (H, W) gray) as JPEG bytes."""
    array = np.asarray(rgb)
    if array.dtype != np.uint8:
        raise BadImageError(f"expected uint8 pixels, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise BadImageError(f"expected an (H, W, 3) RGB image, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()
