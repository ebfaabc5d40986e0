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

What the processor would refuse is refused here, with the record named: Qwen-VL's ``smart_resize`` raises
``absolute aspect ratio must be smaller than 200`` mid-run (GRPO step 1, an SFT batch, an eval batch), so an
image whose stored size has an aspect ratio above :data:`MAX_ASPECT_RATIO` is a bad record (the check uses
the size *after* our resize, which is what the processor sees; our resize rounds so that it never pushes an
acceptable image over the limit).

Decompression bombs: a 17 KB PNG can declare 12000x12000 pixels (432 MB decoded). The header is read first
and an image that would decode to more than ``max_decoded_pixels`` pixels is refused before any pixel is
decoded. JPEGs are decoded at a reduced scale when they are larger than the budget (Pillow's ``draft``: the
DCT decodes at 1/2, 1/4 or 1/8 directly), so a huge photo costs what its resized copy costs; PNG has no
such shortcut, hence the cap. Pillow's own limit (a warning above 89 M pixels, an error above 179 M) still
applies on top.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from visionr1.data.errors import Where

_EXIF_ORIENTATION = 0x0112
MAX_ASPECT_RATIO = 200  # Qwen2/2.5/3-VL's smart_resize raises above this (longer side / shorter side)
DEFAULT_MAX_DECODED_PIXELS = 40_000_000  # ~120 MB as RGB; MATH-V's largest image is 21.5 M pixels


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
    >>> fit_max_pixels(20000, 101, 50176)  # rounded, not truncated: the aspect ratio stays under 200
    (3136, 16)
    """
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
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
            path = where.resolve(str(source["path"]), field)
        elif data is None:
            raise where.error(field, "image entry has neither bytes nor a path")
    elif isinstance(source, bytes | bytearray):
        data = bytes(source)
    elif isinstance(source, str | Path):
        if not str(source).strip():
            raise where.error(field, "empty image path")
        path = where.resolve(str(source), field)
    else:
        raise where.error(field, f"expected an image path, bytes or a {{bytes, path}} entry, got {type(source).__name__}")
    if path is not None and not path.is_file():
        raise where.error(field, f"image file not found: {path}")
    try:
        with warnings.catch_warnings():  # the size is checked against max_decoded_pixels before any decoding
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else path)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        what = f"{path}" if path is not None else f"{len(data or b'')} bytes"
        raise where.error(field, f"not a readable image ({what}): {exc}") from None
    return img, data, path


def aspect_ratio(width: int, height: int) -> float:
    """Longer side over shorter side (what Qwen-VL's processors limit to 200).

    >>> aspect_ratio(10000, 20)
    500.0
    """
    return max(width, height) / max(1, min(width, height))


def prepare_image(
    source: Any, where: Where, field: str, max_pixels: int, verify: bool = True,
    max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS,
) -> StoredImage:
    """Check one image and return what the dataset stores for it (see the module docstring).

    Raises ``DataError`` (via ``where``) for a missing file, an unreadable header, an image the processor
    would refuse (aspect ratio above 200 once resized), one that would decode to more than
    ``max_decoded_pixels`` pixels, or, with ``verify``, pixel data that does not decode (a truncated or
    corrupt file).
    """
    img, data, path = _open(source, where, field)
    try:
        return _prepare(img, source, data, path, where, field, max_pixels, verify, max_decoded_pixels)
    finally:
        if path is not None:
            img.close()  # path images are opened lazily by PIL; don't hold 100K file handles


def _target_size(width: int, height: int, max_pixels: int, where: Where, field: str) -> tuple[int, int]:
    """The stored size of an image of ``width`` x ``height`` (upright), or the error the processor would
    raise on it, named here. Rounding never pushes an image under the limit over it."""
    target = fit_max_pixels(width, height, max_pixels)
    if aspect_ratio(*target) > MAX_ASPECT_RATIO >= aspect_ratio(width, height):
        long_side = math.floor(min(target) * MAX_ASPECT_RATIO)
        target = (long_side, target[1]) if target[0] >= target[1] else (target[0], long_side)
    if aspect_ratio(*target) > MAX_ASPECT_RATIO:
        raise where.error(
            field,
            f"image is {width}x{height} (aspect ratio {aspect_ratio(width, height):.0f}:1); Qwen-VL processors "
            f"refuse aspect ratios above {MAX_ASPECT_RATIO}:1. Fix: crop or pad the image, or skip the record "
            "(skip_bad_records: true)",
        )
    return target


def _prepare(
    img: Image.Image, source: Any, data: bytes | None, path: Path | None, where: Where, field: str,
    max_pixels: int, verify: bool, max_decoded_pixels: int = DEFAULT_MAX_DECODED_PIXELS,
) -> StoredImage:
    header = img.size
    try:
        # EXIF lives before the pixels in JPEG/TIFF/WebP (cheap); PNG keeps it after them (read post-decode)
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1) if img.format != "PNG" else 1
    except (OSError, ValueError, SyntaxError) as exc:
        what = f"{path}" if path is not None else "embedded image bytes"
        raise where.error(field, f"corrupt image ({what}): {exc}") from None
    upright = header[::-1] if orientation in (5, 6, 7, 8) else header
    target = _target_size(*upright, max_pixels, where, field)
    if not isinstance(source, Image.Image):
        if img.format == "JPEG" and target != upright:
            img.draft(img.mode, target if upright == header else target[::-1])  # decode at 1/2..1/8 scale
        if img.size[0] * img.size[1] > max_decoded_pixels:
            raise where.error(
                field,
                f"image declares {header[0]}x{header[1]} = {header[0] * header[1] / 1e6:.1f} M pixels, more than "
                f"max_decoded_pixels ({max_decoded_pixels:,}) allows decoding (a decompression bomb?). Fix: "
                "downscale the file, or raise max_decoded_pixels if the image is genuine",
            )
    try:
        if verify:
            img.load()
            if img.format == "PNG":  # PNG keeps EXIF after the pixels: only known once decoded
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
                upright = header[::-1] if orientation in (5, 6, 7, 8) else header
                target = _target_size(*upright, max_pixels, where, field)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        what = f"{path}" if path is not None else "embedded image bytes"
        raise where.error(field, f"corrupt image ({what}): {exc}") from None
    rotate = orientation not in (1, None)
    original = upright  # what the annotator saw, and what boxes refer to (before any draft reduction)
    if not isinstance(source, Image.Image) and not rotate and _stored_as_is(img) and img.size == header:
        if target == original:
            value = {"bytes": data, "path": None} if data is not None else {"bytes": None, "path": str(path)}
            return StoredImage(value, original, original)
    try:
        out = ImageOps.exif_transpose(img) if rotate else img
        out = _to_rgb(out)
        if out.size != target:
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


def parse_pixel_box(text: str) -> tuple[float, float, float, float] | None:
    """A dataset's pixel box ``"[x1, y1, x2, y2]"`` (exactly that, any order of corners) -> four floats, or None
    when the text is not such a box. (A model's answer is read by :func:`visionr1.rewards.scoring.parse_box`.)

    >>> parse_pixel_box("[10, 20.5, 30, 40]")
    (10.0, 20.5, 30.0, 40.0)
    >>> parse_pixel_box("12") is None
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
    box = parse_pixel_box(text)
    if box is None:
        return None
    sx, sy = size[0] / original[0], size[1] / original[1]
    x1, y1, x2, y2 = box
    return "[" + ", ".join(str(round(v)) for v in (x1 * sx, y1 * sy, x2 * sx, y2 * sy)) + "]"
