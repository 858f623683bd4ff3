"""Image inputs: a PNG or JPEG turned into the pixel features of a model trained on images.

``image_features(data, spec)`` is the whole conversion, pure and synchronous (callers with an
event loop run it in a thread when ``image_pixels`` says it is large): decode (PNG and JPEG only,
the declared size checked before any pixel is inflated), grayscale over white where the image is
transparent, find the paper (the border's median) so dark-on-light and light-on-dark both work,
crop to the ink's box, centre it in a frame of the model's aspect with ``spec.margin`` around it
(sklearn's digits touch their frame: margin 0), area-average down to ``width`` x ``height`` (a
digits pixel counts the inked pixels of a 4x4 block of its 32x32 bitmap), stretch so the
strongest pixel is full ink, and scale to the training range, ink high or low.

The request helpers below read where a request put its image: ``{"image": "<base64>"}`` or a
``data:`` URL in JSON (or ``{"instances": [{"image": ...}, ...]}``), a multipart/form-data file
field ``image``, or a raw ``image/png`` / ``image/jpeg`` body. Every failure is an
``ImageError`` with a reason and a sentence for the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import warnings
from email.message import Message
from typing import Any

import numpy as np
import orjson
from PIL import Image, ImageOps, UnidentifiedImageError

from schemas import ImageSpec, InkLevel

FORMATS = ("PNG", "JPEG")
"""The only decoders Pillow may pick: nothing else of its dozens of formats is reachable."""
MAX_PIXELS = 4_000_000
"""Declared width x height at most (checked from the header, before decoding): a 1 MB body
could otherwise inflate to gigabytes (a PNG of one colour compresses about 1000:1)."""
INLINE_PIXELS = 96 * 96
"""Images up to this size (a drawn digit, an MNIST scan) go through in about half a millisecond
of an idle core: on the event loop; larger ones in a thread (a 512 x 512 PNG takes ~5 ms)."""
INLINE_BYTES = 64 * 1024
"""...and only when their files are this small: a few pixels can carry a megabyte of metadata
that Pillow parses in Python (a 0.7 MB EXIF in an 8 x 8 PNG: 60 ms)."""
MAX_PARTS = 16
"""Parts of a multipart body at most."""
MAX_PNG_INFLATED_CHUNKS = 4
"""iCCP, zTXt and iTXt chunks at most: Pillow inflates each (up to 1 MB) while reading the
header, however many there are (a 1 MB body of 1,000 of them is a gigabyte of inflating)."""
MAX_PNG_HEADER_CHUNKS = 256
"""Chunks before the pixel data at most (encoders write about 10): Pillow reads each in Python
on the event loop, and 80,000 empty ones in a 1 MB body took 0.3 s there."""
MAX_PNG_CHUNKS = 4096
"""Chunks at most in all (encoders write the pixel data in 8 to 64 KB chunks)."""
MAX_JPEG_SEGMENTS = 256
"""Marker segments before the first scan at most (encoders write about 12): as PNG chunks."""
MAX_JPEG_STRAY_BYTES = 1024
"""Fill or junk bytes between those segments at most: Pillow skips them one at a time (a 1 MB
run of 0xFF took 0.35 s on the event loop)."""
MAX_IMAGES = 100
"""Images per request at most, counted before any is decoded: however small, each costs about
0.2 ms to read (10,000 1-pixel PNGs fit in a 1 MB body)."""
MAX_JPEG_SCANS = 32
"""Scans of a progressive JPEG at most (encoders write about 10): each scan goes over every
coefficient again, so thousands of tiny scans make a small file cost minutes to decode."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INFLATED_CHUNKS = frozenset((b"iCCP", b"zTXt", b"iTXt"))
INK_THRESHOLD = 0.25
"""Share of the strongest ink under which a pixel is paper noise (JPEG ringing, grain) when the
ink's box is found."""
IMAGE_FIELD = "image"
IMAGE_MEDIA = frozenset(("image/png", "image/jpeg", "image/jpg"))


class ImageError(ValueError):
    """An image the API cannot take; ``reason`` is stable, ``message`` says what to send."""

    def __init__(self, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = {"reason": reason, **(details or {})}


def _too_complex(message: str, details: dict[str, Any] | None = None) -> ImageError:
    return ImageError("too_complex", message, details)


def _check_png(data: bytes) -> None:
    pos, chunks, inflated, in_header = len(PNG_SIGNATURE), 0, 0, True
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks += 1
        if kind == b"IDAT":
            in_header = False
        elif in_header and chunks > MAX_PNG_HEADER_CHUNKS:
            raise _too_complex(
                f"the PNG has more than {MAX_PNG_HEADER_CHUNKS} chunks before its pixels",
                {"max_chunks": MAX_PNG_HEADER_CHUNKS},
            )
        if chunks > MAX_PNG_CHUNKS:
            raise _too_complex(
                f"the PNG has more than {MAX_PNG_CHUNKS} chunks", {"max_chunks": MAX_PNG_CHUNKS}
            )
        if kind in INFLATED_CHUNKS:
            inflated += 1
            if inflated > MAX_PNG_INFLATED_CHUNKS:
                raise _too_complex(
                    f"the PNG has more than {MAX_PNG_INFLATED_CHUNKS} compressed metadata "
                    "chunks (iCCP, zTXt, iTXt)"
                )
        if kind == b"IEND":
            break
        pos += 12 + length


def _check_jpeg(data: bytes) -> None:
    scans = data.count(b"\xff\xda")
    if scans > MAX_JPEG_SCANS:
        raise _too_complex(
            f"the JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are accepted",
            {"scans": scans, "max_scans": MAX_JPEG_SCANS},
        )
    pos, segments, stray = 2, 0, 0
    while pos + 1 < len(data):
        marker = data[pos + 1]
        if data[pos] != 0xFF or marker in (0x00, 0xFF):
            stray += 1
            if stray > MAX_JPEG_STRAY_BYTES:
                raise _too_complex(
                    f"the JPEG has more than {MAX_JPEG_STRAY_BYTES} stray bytes between its "
                    "markers",
                    {"max_stray_bytes": MAX_JPEG_STRAY_BYTES},
                )
            pos += 1
            continue
        if marker == 0xDA:  # the first scan: libjpeg (in C) reads the rest
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise _too_complex(
                f"the JPEG has more than {MAX_JPEG_SEGMENTS} marker segments before its first scan",
                {"max_segments": MAX_JPEG_SEGMENTS},
            )
        standalone = marker == 0x01 or 0xD0 <= marker <= 0xD9  # SOI, EOI, RSTn, TEM
        pos += 2 if standalone else 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")


def _check_structure(data: bytes) -> None:
    """Refuse the shapes that cost Pillow far more than their size, by a walk over PNG chunk
    headers or JPEG marker segments: many compressed PNG chunks, many chunks or segments (Pillow
    reads each in Python), stray JPEG bytes (skipped one at a time), many JPEG scans (each goes
    over every coefficient again; a count of SOS markers: stuffing keeps 0xFFDA out of
    entropy-coded data)."""
    if data.startswith(PNG_SIGNATURE):
        _check_png(data)
    elif data.startswith(b"\xff\xd8"):
        _check_jpeg(data)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """The image with its header read and its size checked; no pixel decoded yet."""
    if not data:
        raise ImageError("empty", "the image is empty")
    _check_structure(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past twice its own limit raises) on big sizes: ours is lower.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ImageError(
            "too_many_pixels",
            f"the image declares far more than the {max_pixels} pixels accepted",
            {"max_pixels": max_pixels},
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            "unsupported_format", "the image must be a PNG or a JPEG file", {"accepted": FORMATS}
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError("undecodable", f"the image cannot be read: {exc}"[:200]) from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        image.close()
        raise ImageError(
            "too_many_pixels",
            f"the image declares {width} x {height} pixels; at most {max_pixels} are accepted",
            {"width": width, "height": height, "max_pixels": max_pixels},
        )
    return image


def image_pixels(data: bytes, max_pixels: int = MAX_PIXELS) -> int:
    """The declared width x height (header only), or ``ImageError`` as ``image_features``."""
    with _open(data, max_pixels) as image:
        return int(image.size[0] * image.size[1])


def _gray(data: bytes, max_pixels: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Luminance in 0..255 (0 black), transparent areas on white."""
    with _open(data, max_pixels) as image:
        try:
            if image.format == "JPEG":
                image.draft("L", (256, 256))  # libjpeg decodes at 1/2..1/8 scale: cheaper
            image.load()
            # A phone's photo is stored sideways with an EXIF orientation: turn it upright.
            image = ImageOps.exif_transpose(image)
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            if has_alpha:
                rgba = image.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                gray = Image.alpha_composite(paper, rgba).convert("L")
            else:
                gray = image.convert("L")
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise ImageError("undecodable", f"the image cannot be decoded: {exc}"[:200]) from None
    return np.asarray(gray, dtype=np.float32)


def ink_map(gray: np.ndarray[Any, np.dtype[np.float32]]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """How much ink each pixel holds, 0..1 (1 the strongest stroke), whatever the paper's tone:
    the paper is the border's median, the ink whatever departs from it."""
    border = np.concatenate((gray[0], gray[-1], gray[:, 0], gray[:, -1]))
    paper = float(np.median(border))
    ink: np.ndarray[Any, np.dtype[np.float32]] = np.abs(gray - np.float32(paper))
    strongest = float(ink.max())
    if strongest > 0.0:
        ink /= np.float32(strongest)
    return ink


def frame(
    ink: np.ndarray[Any, np.dtype[np.float32]], spec: ImageSpec
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The ink cropped to its box and centred, with ``spec.margin`` around it, in a frame of the
    model's aspect (ratio width:height) and kept at full resolution; blank stays blank."""
    rows = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink >= INK_THRESHOLD).any(axis=0))
    if rows.size == 0:
        return ink
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink_h, ink_w = crop.shape
    inner = 1.0 - 2.0 * spec.margin
    aspect = spec.width / spec.height
    frame_h = max(ink_h / inner, ink_w / inner / aspect)
    frame_w = frame_h * aspect
    out_h, out_w = max(ink_h, round(frame_h)), max(ink_w, round(frame_w))
    out = np.zeros((out_h, out_w), dtype=np.float32)
    top, left = (out_h - ink_h) // 2, (out_w - ink_w) // 2
    out[top : top + ink_h, left : left + ink_w] = crop
    return out


def to_features(ink: np.ndarray[Any, np.dtype[np.float32]], spec: ImageSpec) -> list[float]:
    """A framed ink map area-averaged to ``width`` x ``height`` and scaled to the training
    range, row after row."""
    small = Image.fromarray(ink).resize((spec.width, spec.height), Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.float64).clip(0.0, 1.0)
    strongest = float(pixels.max())
    if strongest > 0.0:
        pixels = pixels / strongest  # thin pens: the densest block is full ink, as in training
    if spec.ink is InkLevel.LOW:
        pixels = 1.0 - pixels
    values = spec.min_value + pixels * (spec.max_value - spec.min_value)
    if spec.integers:
        values = np.rint(values)
    return [float(v) for v in values.ravel()]


def image_features(data: bytes, spec: ImageSpec, max_pixels: int = MAX_PIXELS) -> list[float]:
    """A PNG or JPEG as the model's ``width * height`` pixel features (row-major, training
    range); ``ImageError`` says why an image cannot be taken."""
    return to_features(frame(ink_map(_gray(data, max_pixels)), spec), spec)


# --- where a request put its image -------------------------------------------------------------


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_image_request(content_type: str) -> bool:
    """Whether the body itself is an image or a multipart form (not JSON)."""
    media = media_type(content_type)
    return media in IMAGE_MEDIA or media == "multipart/form-data"


def decode_base64(value: Any, where: str = IMAGE_FIELD) -> bytes:
    """The bytes of a base64 string or of a ``data:image/...;base64,`` URL."""
    if not isinstance(value, str):
        raise ImageError("not_base64", f'"{where}" must be a base64 string of a PNG or JPEG file')
    text = value.strip()
    if text[:5].lower() == "data:":
        head, sep, text = text.partition(",")
        if not sep or not head.lower().endswith(";base64"):
            raise ImageError("not_base64", f'"{where}": a data URL must be ";base64," encoded')
    text = "".join(text.split())
    text += "=" * (-len(text) % 4)
    altchars = b"-_" if "-" in text or "_" in text else None
    try:
        return base64.b64decode(text, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("not_base64", f'"{where}" is not valid base64') from None


def json_images(payload: Any, max_images: int = MAX_IMAGES) -> tuple[list[bytes], bool] | None:
    """The images of a JSON body, and whether it sent ``instances`` (several); None when it
    holds no image (plain features). At most ``max_images``, counted before any is decoded."""
    if not isinstance(payload, dict):
        return None
    if IMAGE_FIELD in payload:
        if len(payload) != 1:
            others = sorted(k for k in payload if k != IMAGE_FIELD)[:10]
            raise ImageError(
                "mixed_input", 'send "image" alone, without features', {"unexpected": others}
            )
        return [decode_base64(payload[IMAGE_FIELD])], False
    instances = payload.get("instances")
    if (
        isinstance(instances, list)
        and instances
        and isinstance(instances[0], dict)
        and IMAGE_FIELD in instances[0]
    ):
        if len(instances) > max_images:
            raise ImageError(
                "too_many_images",
                f"at most {max_images} images per request (got {len(instances)})",
                {"images": len(instances), "max_images": max_images},
            )
        images = []
        for index, item in enumerate(instances):
            if not isinstance(item, dict) or set(item) != {IMAGE_FIELD}:
                raise ImageError(
                    "mixed_input",
                    f'instance {index}: each instance must be {{"image": "<base64>"}}',
                    {"index": index},
                )
            images.append(decode_base64(item[IMAGE_FIELD], f"instances[{index}].image"))
        return images, True
    return None


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 200:
        raise ImageError("bad_multipart", "multipart/form-data needs a boundary parameter")
    return boundary.encode("latin-1", "replace")


def multipart_file(content_type: str, body: bytes, field: str = IMAGE_FIELD) -> bytes:
    """The content of the form field ``field`` (a file) of a multipart/form-data body."""
    delimiter = b"\r\n--" + _boundary(content_type)
    segments = (b"\r\n" + body).split(delimiter, MAX_PARTS + 1)
    if len(segments) < 2:
        raise ImageError("bad_multipart", "the multipart body has no part")
    found: list[str] = []
    for segment in segments[1 : MAX_PARTS + 1]:
        if segment.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = segment.partition(b"\r\n\r\n")
        if not sep:
            raise ImageError("bad_multipart", "a part of the multipart body has no header end")
        disposition = Message()
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.decode("latin-1").partition(":")
            if colon and name.strip().lower() == "content-disposition":
                disposition["content-disposition"] = value.strip()
        part_name = disposition.get_param("name", header="content-disposition")
        part_name = part_name if isinstance(part_name, str) else ""
        if part_name == field:
            return content
        found.append(part_name[:64])
    raise ImageError(
        "no_image_field",
        f'the form has no file field "{field}" (curl -F {field}=@digit.png)',
        {"fields": found},
    )


def body_image(content_type: str, body: bytes) -> bytes:
    """The image a non-JSON request carries: its multipart field ``image``, or the raw body."""
    if media_type(content_type) == "multipart/form-data":
        return multipart_file(content_type, body)
    return body


def _check_spec(spec: ImageSpec, feature_names: list[str]) -> None:
    if spec.pixels != len(feature_names):
        # The management API refuses such a declaration: a record that slipped through is ours.
        raise RuntimeError(
            f"image spec {spec.width}x{spec.height} does not match {len(feature_names)} features"
        )


def _features_of(images: list[bytes], spec: ImageSpec, max_pixels: int) -> list[list[float]]:
    return [image_features(data, spec, max_pixels) for data in images]


async def features_body(
    spec: ImageSpec | None,
    feature_names: list[str],
    content_type: str,
    body: bytes,
    max_pixels: int = MAX_PIXELS,
    max_images: int = MAX_IMAGES,
) -> bytes | None:
    """The JSON body of features equivalent to an image request (``{name: value}``, or
    ``{"instances": [...]}`` for several images), or None when the request holds no image (a
    JSON body of features, or JSON that does not parse: the usual checks answer it).
    ``ImageError`` when the image cannot be taken, or the API takes no image."""
    if is_image_request(content_type):
        found: tuple[list[bytes], bool] | None = ([body_image(content_type, body)], False)
    elif IMAGE_FIELD in feature_names:
        return None  # a feature called "image": plain features
    else:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        found = json_images(payload, max_images)
    if found is None:
        return None
    if spec is None:
        raise ImageError(
            "not_an_image_api",
            "this API takes feature values as JSON, not images",
            {"features": feature_names[:10]},
        )
    _check_spec(spec, feature_names)
    images, many = found
    declared = sum(image_pixels(data, max_pixels) for data in images)
    if declared > max_pixels:
        raise ImageError(
            "too_many_pixels",
            f"the images declare {declared} pixels in all; at most {max_pixels} per request",
            {"pixels": declared, "max_pixels": max_pixels},
        )
    if declared <= INLINE_PIXELS and sum(len(data) for data in images) <= INLINE_BYTES:
        rows = _features_of(images, spec, max_pixels)
    else:
        rows = await asyncio.to_thread(_features_of, images, spec, max_pixels)
    objects = [dict(zip(feature_names, row, strict=True)) for row in rows]
    if spec.integers:
        objects = [{name: int(value) for name, value in obj.items()} for obj in objects]
    return orjson.dumps({"instances": objects} if many else objects[0])
