"""Images into the canonical sample: checked now, decoded lazily later, at most ``max_pixels`` pixels.

Why check at load time: a corrupt PNG found by the collator in step 3,000 of a GRPO run costs the run; found
here, it costs a line in the log (or an error that names the record). Every image is therefore opened, and
by default fully decoded once (``verify_images``), when the dataset is built.

Why not re-encode every image: re-encoding 200K PNGs costs more than decoding them. An image that is
already fine (RGB or greyscale, no EXIF rotation, small enough) is stored as it came, a path or the original
bytes, and datasets' ``Image(mode="RGB")`` feature decodes it when a row is read. Only images that need
work are rewritten:

- more than ``max_pixels`` pixels: resized, aspect kept (as Qwen2-VL's processor would do anyway, but
  a fixed budget keeps memory and token counts predictable, and the grounding boxes must follow);
- an alpha channel or palette transparency: composited onto **white**. A plain ``convert("RGB")`` turns
  transparent pixels black, and a geometry diagram of black lines on a transparent background then
  becomes a black square;
- an EXIF orientation tag: rotated upright, as a viewer (and the annotator) saw it;
- other modes (CMYK, 16-bit, ...): converted to RGB here rather than by a lossy decode-time cast.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from visionr1.data.errors import Where

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class StoredImage:
    """An image ready for datasets' Image feature (``value``), with its size before and after resizing."""

    value: dict[str, Any]  # {"bytes": ..., "path": ...}
    original_size: tuple[int, int]
    size: tuple[int, int]

    @property
    def resized(self) -> bool:
        return self.original_size != self.size


def fit_max_pixels(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """The largest size with the same aspect ratio and at most ``max_pixels`` pixels (unchanged if it fits).

    >>> fit_max_pixels(100, 50, 10_000)
    (100, 50)
    >>> fit_max_pixels(400, 200, 20_000)
    (200, 100)
    >>> w, h = fit_max_pixels(1000, 3, 900); w * h <= 900 and h >= 1
    True
    """
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, int(width * scale)), max(1, int(height * scale))
    while w * h > max_pixels:  # a 1-pixel side can push the product over; shrink the long side
        if w >= h:
            w -= 1
        else:
            h -= 1
    return w, h


def _stored_as_is(img: Image.Image) -> bool:
    """Modes that datasets' ``Image(mode="RGB")`` converts correctly at decode time (palette included)."""
    return img.mode in ("RGB", "L", "P", "1") and "transparency" not in img.info


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with transparency composited on white (see the module docstring for why not black)."""
    if "transparency" in img.info and img.mode in ("P", "L", "RGB"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white
        img = img.point(lambda v: v * (1 / 256)).convert("L")
    return img.convert("RGB")


def _open(source: Any, where: Where, field: str) -> tuple[Image.Image, bytes | None, Path | None]:
    """Open an image given as bytes, a path, a {bytes, path} struct or a PIL image."""
    if isinstance(source, Image.Image):
        return source, None, None
    data: bytes | None = None
    path: Path | None = None
    if isinstance(source, dict):
        data = source.get("bytes")
        if data is None and source.get("path"):
            path = where.resolve(str(source["path"]))
        elif data is None:
            raise where.error(field, "image entry has neither bytes nor a path")
    elif isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, str | Path):
        if not str(source).strip():
            raise where.error(field, "empty image path")
        path = where.resolve(str(source))
    else:
        raise where.error(field, f"expected an image path, bytes or a {{bytes, path}} entry, got {type(source).__name__}")
    if path is not None and not path.is_file():
        raise where.error(field, f"image file not found: {path}")
    try:
        img = Image.open(io.BytesIO(data) if data is not None else path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        what = f"{path}" if path is not None else f"{len(data or b'')} bytes"
        raise where.error(field, f"not a readable image ({what}): {exc}") from None
    return img, data, path


def prepare_image(source: Any, where: Where, field: str, max_pixels: int, verify: bool = True) -> StoredImage:
    """Check one image and return what the dataset stores for it (see the module docstring).

    Raises ``DataError`` (via ``where``) for a missing file, an unreadable header or, with ``verify``, pixel
    data that does not decode (a truncated or corrupt file).
    """
    img, data, path = _open(source, where, field)
    try:
        return _prepare(img, source, data, path, where, field, max_pixels, verify)
    finally:
        if path is not None:
            img.close()  # path images are opened lazily by PIL; don't hold 100K file handles


def _prepare(
    img: Image.Image, source: Any, data: bytes | None, path: Path | None, where: Where, field: str,
    max_pixels: int, verify: bool,
) -> StoredImage:
    try:
        if verify:
            img.load()
        # PNG keeps EXIF after the pixels, so reading it means decoding: skipped in header-only mode
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if verify or img.format != "PNG" else 1
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        what = f"{path}" if path is not None else "embedded image bytes"
        raise where.error(field, f"corrupt image ({what}): {exc}") from None
    rotate = orientation not in (1, None)
    original = img.size
    if not isinstance(source, Image.Image) and not rotate and _stored_as_is(img):
        if fit_max_pixels(*original, max_pixels) == original:
            value = {"bytes": data, "path": None} if data is not None else {"bytes": None, "path": str(path)}
            return StoredImage(value, original, original)
    try:
        out = ImageOps.exif_transpose(img) if rotate else img
        out = _to_rgb(out)
        original = out.size  # upright size: what the annotator saw, and what boxes refer to
        target = fit_max_pixels(*original, max_pixels)
        if target != original:
            out = out.resize(target, Image.Resampling.BICUBIC)
    except (OSError, ValueError, SyntaxError) as exc:
        raise where.error(field, f"corrupt image: {exc}") from None
    buf = io.BytesIO()
    if img.format == "JPEG":
        out.save(buf, format="JPEG", quality=95)  # photos stay compact; as PNG they would be 5-10x larger
    else:
        out.save(buf, format="PNG")
    return StoredImage({"bytes": buf.getvalue(), "path": None}, original, out.size)


def encode_frame(img: Image.Image, max_pixels: int) -> StoredImage:
    """A decoded video frame, resized to ``max_pixels`` and stored as PNG (lossless: a frame is small)."""
    original = img.size
    img = img.convert("RGB") if img.mode != "RGB" else img
    target = fit_max_pixels(*original, max_pixels)
    if target != original:
        img = img.resize(target, Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return StoredImage({"bytes": buf.getvalue(), "path": None}, original, img.size)


# ----------------------------------------------------------------------------------------------------------
# Grounding boxes follow their image
# ----------------------------------------------------------------------------------------------------------

_NUMBER = r"-?\d+(?:\.\d+)?"
_BOX_RE = re.compile(rf"^\s*\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]\s*$")


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """``"[x1, y1, x2, y2]"`` -> four floats, or None when the text is not such a box.

    >>> parse_box("[10, 20.5, 30, 40]")
    (10.0, 20.5, 30.0, 40.0)
    >>> parse_box("12") is None
    True
    """
    m = _BOX_RE.match(text)
    return tuple(float(g) for g in m.groups()) if m else None  # type: ignore[return-value]


def rescale_box(text: str, original: tuple[int, int], size: tuple[int, int]) -> str | None:
    """Rescale a ``"[x1, y1, x2, y2]"`` pixel box from an image of ``original`` size to one of ``size``.

    Coordinates are rounded to integers (pixel boxes; the IoU changes by well under 1%). Returns None when
    ``text`` is not a box.

    >>> rescale_box("[100, 50, 200, 100]", (400, 200), (200, 100))
    '[50, 25, 100, 50]'
    """
    box = parse_box(text)
    if box is None:
        return None
    sx, sy = size[0] / original[0], size[1] / original[1]
    x1, y1, x2, y2 = box
    return "[" + ", ".join(str(round(v)) for v in (x1 * sx, y1 * sy, x2 * sx, y2 * sy)) + "]"
