"""Image helpers for the dashboard: thumbnails (JPEG sizes come from the camera's MJPEG module)."""

from __future__ import annotations

import io

from smartlock.errors import BadImageError, DependencyMissing


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError as err:  # pragma: no cover - Pillow is a core dependency
        raise DependencyMissing("pillow", "Making thumbnails") from err
    return Image, ImageOps


def thumbnail_jpeg(
    data: bytes,
    max_side: int = 320,
    crop: tuple[float, float, float, float] | None = None,
    margin: float = 0.35,
    quality: int = 82,
) -> bytes:
    """A JPEG no larger than ``max_side`` px, optionally of the box ``crop`` (left, top, right, bottom)
    grown by ``margin`` of its size on each side. BadImageError when ``data`` is not an image."""
    image_module, image_ops = _pil()
    try:
        with image_module.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > 60_000_000:
                raise BadImageError("image too large for a thumbnail")
            image = image_ops.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, image_module.DecompressionBombError) as err:
        raise BadImageError(f"not an image: {err}") from err
    if crop is not None:
        left, top, right, bottom = crop
        grow_x, grow_y = (right - left) * margin, (bottom - top) * margin
        box = (
            max(0, int(left - grow_x)),
            max(0, int(top - grow_y)),
            min(image.width, int(right + grow_x)),
            min(image.height, int(bottom + grow_y)),
        )
        if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
            image = image.crop(box)
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
