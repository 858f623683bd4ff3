"""Image inputs (issue 14): a PNG or JPEG becomes the pixel features of an image model, cropped to
the ink, centred, resized and scaled to the training range (ink high or low); everything else
is an ``ImageError`` with a reason. ``tests/integration/test_image_api.py`` goes through ingress."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import zlib

import numpy as np
import orjson
import pytest
from PIL import Image, ImageDraw

from ingress.images import (
    ImageError,
    features_body,
    image_features,
    image_pixels,
    multipart_file,
)
from schemas import ImageSpec

DIGITS = ImageSpec(width=8, height=8, min_value=0, max_value=16, integers=True)
NAMES = [f"pixel_{r}_{c}" for r in range(8) for c in range(8)]


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def square(size: int = 64, box: tuple[int, int, int, int] = (10, 10, 20, 20)) -> Image.Image:
    """A black rectangle outline (3 px) on white, off-centre."""
    image = Image.new("L", (size, size), 255)
    ImageDraw.Draw(image).rectangle(box, outline=0, width=3)
    return image


def grid(features: list[float], spec: ImageSpec = DIGITS) -> np.ndarray:
    return np.array(features).reshape(spec.height, spec.width)


def test_dark_ink_on_light_paper_maps_to_the_high_values_and_paper_to_the_low() -> None:
    pixels = grid(image_features(encode(square()), DIGITS))
    assert pixels.max() == 16 and pixels.min() == 0
    assert all(float(v).is_integer() for v in pixels.ravel())  # digits are whole counts


def test_light_ink_on_dark_paper_gives_the_same_features() -> None:
    dark = Image.eval(square(), lambda v: 255 - v)
    assert image_features(encode(dark), DIGITS) == image_features(encode(square()), DIGITS)


def test_ink_low_inverts_and_the_range_is_the_declared_one() -> None:
    spec = ImageSpec(width=4, height=4, min_value=-1.0, max_value=1.0, ink="low")
    pixels = grid(image_features(encode(square()), spec), spec)
    assert pixels.min() == pytest.approx(-1.0) and pixels.max() == pytest.approx(1.0)
    ring = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(ring).rectangle((8, 8, 56, 56), outline=0, width=8)
    framed = grid(image_features(encode(ring), spec), spec)
    assert framed[0, 0] == pytest.approx(-1.0)  # the ring's ink (low)
    assert framed[1:3, 1:3] == pytest.approx(1.0)  # the paper inside it (high)


def test_the_ink_is_cropped_and_centred_wherever_it_was_drawn() -> None:
    corner = image_features(encode(square(box=(2, 2, 12, 30))), DIGITS)
    middle = image_features(encode(square(box=(30, 20, 40, 48))), DIGITS)
    assert corner == middle
    pixels = grid(middle)
    # A tall box: it spans every row (margin 0, as in sklearn's digits) and sits in the middle.
    assert (pixels > 0).any(axis=1).all()
    cols = np.flatnonzero((pixels > 0).any(axis=0))
    assert cols[0] + cols[-1] == 7  # symmetric about the centre


def test_a_margin_leaves_blank_rows_and_columns_around_the_ink() -> None:
    spec = ImageSpec(width=10, height=10, margin=0.2)
    pixels = grid(image_features(encode(square(box=(5, 5, 50, 50))), spec), spec)
    assert (pixels[:2] == 0).all() and (pixels[-2:] == 0).all()
    assert (pixels[:, :2] == 0).all() and (pixels[:, -2:] == 0).all()
    assert (pixels[2:8, 2:8] > 0).any() and (pixels[2, 2:8] > 0).all()


def test_transparent_paper_counts_as_white() -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # a canvas export: transparent black
    ImageDraw.Draw(image).rectangle((10, 5, 20, 35), outline=(0, 0, 0, 255), width=3)
    opaque = square(40, (10, 5, 20, 35)).convert("RGB")
    assert image_features(encode(image), DIGITS) == image_features(encode(opaque), DIGITS)


def test_jpeg_is_accepted_and_a_blank_image_is_all_paper() -> None:
    assert grid(image_features(encode(square().convert("RGB"), "JPEG"), DIGITS)).max() == 16
    assert image_features(encode(Image.new("L", (30, 30), 255)), DIGITS) == [0.0] * 64


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_other_formats_are_refused_even_when_pillow_reads_them(fmt: str) -> None:
    with pytest.raises(ImageError) as caught:
        image_features(encode(square().convert("RGB"), fmt), DIGITS)
    assert caught.value.reason == "unsupported_format"


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` with a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_refused_from_its_header() -> None:
    for width, height in ((5_000, 5_000), (100_000, 100_000)):  # over ours; over Pillow's
        data = bomb_png(width, height)
        assert len(data) < 200
        with pytest.raises(ImageError) as caught:
            image_pixels(data)
        assert caught.value.reason == "too_many_pixels"
        with pytest.raises(ImageError):
            image_features(data, DIGITS)


def test_truncated_and_garbage_bytes_are_refused() -> None:
    data = encode(square())
    for broken in (data[: len(data) // 2], data[:30], b"not an image at all", b""):
        with pytest.raises(ImageError):
            image_features(broken, DIGITS)


def test_multipart_field_image_is_found_among_other_parts() -> None:
    png = encode(square())
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="d.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--XyZ--\r\n"
    )
    assert multipart_file("multipart/form-data; boundary=XyZ", body) == png
    with pytest.raises(ImageError) as caught:
        multipart_file("multipart/form-data; boundary=XyZ", body, field="file")
    assert caught.value.reason == "no_image_field"
    with pytest.raises(ImageError):
        multipart_file("multipart/form-data", body)


def test_features_body_reads_json_base64_data_urls_and_instances() -> None:
    png = encode(square())
    expected = image_features(png, DIGITS)
    b64 = base64.b64encode(png).decode()

    def body_of(payload: object) -> dict[str, object]:
        out = asyncio.run(features_body(DIGITS, NAMES, "application/json", orjson.dumps(payload)))
        assert out is not None
        return dict(orjson.loads(out))

    single = body_of({"image": b64})
    assert list(single) == NAMES and list(single.values()) == expected
    assert body_of({"image": "data:image/png;base64," + b64}) == single
    assert body_of({"instances": [{"image": b64}, {"image": b64}]}) == {
        "instances": [single, single]
    }
    plain = orjson.dumps(dict.fromkeys(NAMES, 0))
    assert asyncio.run(features_body(DIGITS, NAMES, "application/json", plain)) is None
    with pytest.raises(ImageError) as caught:
        asyncio.run(features_body(DIGITS, NAMES, "application/json", b'{"image": "%%%"}'))
    assert caught.value.reason == "not_base64"


def test_an_api_without_an_image_spec_refuses_images() -> None:
    png = encode(square())
    with pytest.raises(ImageError) as caught:
        asyncio.run(features_body(None, ["a", "b"], "image/png", png))
    assert caught.value.reason == "not_an_image_api"
    body = orjson.dumps({"image": base64.b64encode(png).decode()})
    with pytest.raises(ImageError):
        asyncio.run(features_body(None, ["a", "b"], "application/json", body))
    # A feature that happens to be called "image" is a feature.
    assert asyncio.run(features_body(None, ["image"], "application/json", body)) is None


def png_chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def test_a_png_of_many_compressed_metadata_chunks_is_refused_before_pillow_inflates_them() -> None:
    """Each iCCP chunk is inflated (up to 1 MB) while Pillow reads the header: 1 KB each makes a
    1 MB body a gigabyte of inflating on the event loop."""
    png = encode(square())
    profile = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 1_000_000, 9))
    assert len(profile) < 2_000
    bomb = png[:33] + profile * 50 + png[33:]  # after the IHDR chunk
    with pytest.raises(ImageError) as caught:
        image_pixels(bomb)
    assert caught.value.reason == "too_complex"
    image_features(png[:33] + profile + png[33:], DIGITS)  # one profile is fine


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding() -> None:
    jpeg = encode(square().convert("RGB"), "JPEG")
    comment = b"\xff\xda" * 100
    padded = jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]
    with pytest.raises(ImageError) as caught:
        image_features(padded, DIGITS)
    assert caught.value.reason == "too_complex" and caught.value.details["scans"] > 32
    progressive = io.BytesIO()
    square().convert("RGB").save(progressive, "JPEG", progressive=True)
    assert grid(image_features(progressive.getvalue(), DIGITS)).max() == 16


def test_a_deploy_that_drops_the_image_input_breaks_image_callers() -> None:
    """Retrained from a CSV without declaring its images, a version would answer every image
    request 400: the deploy guard calls it incompatible; adding images is harmless."""
    from management_api.compat import Signature, compare, summary
    from schemas import FeatureSpec, FeatureType, Task

    features = [FeatureSpec(name=n, type=FeatureType.INTEGER) for n in NAMES]
    images = Signature(task=Task.CLASSIFICATION, features=features, image=DIGITS)
    plain = Signature(task=Task.CLASSIFICATION, features=features)
    dropped = compare(images, plain)
    assert not dropped.compatible and dropped.image_dropped
    assert summary(dropped) == "takes no images"
    assert compare(plain, images).compatible
    assert compare(images, images).compatible


def test_a_photo_stored_sideways_is_turned_upright_by_its_exif_orientation() -> None:
    upright = square(box=(10, 5, 30, 60)).convert("RGB")  # tall: rotated it would be wide
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a camera held sideways writes it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to view
    out = io.BytesIO()
    stored.save(out, "JPEG", exif=exif.tobytes())
    sideways = io.BytesIO()
    stored.save(sideways, "JPEG")
    turned = grid(image_features(out.getvalue(), DIGITS))
    assert (turned > 0).any(axis=1).all()  # tall again: ink on every row
    assert not (grid(image_features(sideways.getvalue(), DIGITS)) > 0).any(axis=1).all()


def test_a_png_of_thousands_of_empty_chunks_is_refused_before_pillow_reads_them() -> None:
    """Pillow reads every chunk before the pixels in Python, on the event loop: 80,000 empty
    ones fit in a 1 MB body. A usual count of them passes."""
    png = encode(square())
    filler = png_chunk(b"teXt", b"") * 300  # ancillary, unknown to Pillow: skipped one by one
    with pytest.raises(ImageError) as caught:
        image_pixels(png[:33] + filler + png[33:])
    assert caught.value.reason == "too_complex" and caught.value.details["max_chunks"] == 256
    idat_at = png.index(b"IDAT") - 4
    split = png_chunk(b"IDAT", b"") * 5000  # empty pixel-data chunks: as many walks
    with pytest.raises(ImageError) as caught:
        image_pixels(png[:idat_at] + split + png[idat_at:])
    assert caught.value.reason == "too_complex" and caught.value.details["max_chunks"] == 4096
    assert image_features(png[:33] + png_chunk(b"teXt", b"") * 20 + png[33:], DIGITS)


def test_a_jpeg_of_thousands_of_segments_or_stray_bytes_is_refused_before_pillow_reads_it() -> None:
    """Pillow walks markers in Python and skips fill bytes one at a time: a 1 MB run of 0xFF
    after the first segment took 0.35 s of the event loop. A few fill bytes (which libjpeg
    allows) pass."""
    jpeg = encode(square().convert("RGB"), "JPEG")
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    comments = b"\xff\xfe\x00\x02" * 300
    with pytest.raises(ImageError) as caught:
        image_pixels(jpeg[:2] + comments + jpeg[2:])
    assert caught.value.reason == "too_complex" and caught.value.details["max_segments"] == 256
    with pytest.raises(ImageError) as caught:
        image_pixels(jpeg[:app0_end] + b"\xff" * 5000 + jpeg[app0_end:])
    assert caught.value.reason == "too_complex"
    assert caught.value.details["max_stray_bytes"] == 1024
    few = jpeg[:app0_end] + b"\xff" * 8 + jpeg[app0_end:]
    assert grid(image_features(few, DIGITS)).max() == 16


def test_more_images_than_a_request_may_hold_are_refused_before_any_is_decoded() -> None:
    """10,000 one-pixel PNGs fit in a 1 MB body: 2 s of decoding before the instance cap."""
    bad = orjson.dumps({"instances": [{"image": "%%% not base64 %%%"}] * 101})
    with pytest.raises(ImageError) as caught:
        asyncio.run(features_body(DIGITS, NAMES, "application/json", bad))
    assert caught.value.reason == "too_many_images" and caught.value.details["images"] == 101
    b64 = base64.b64encode(encode(square())).decode()
    two = orjson.dumps({"instances": [{"image": b64}] * 2})
    with pytest.raises(ImageError) as caught:
        asyncio.run(features_body(DIGITS, NAMES, "application/json", two, max_images=1))
    assert caught.value.details == {"reason": "too_many_images", "images": 2, "max_images": 1}
    assert asyncio.run(features_body(DIGITS, NAMES, "application/json", two, max_images=2))


def test_a_few_pixels_carrying_a_large_file_are_decoded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An 8 x 8 PNG can carry 0.7 MB of EXIF that Pillow parses in Python (60 ms): the pixel
    count alone must not put it on the event loop. A small file of few pixels stays there."""
    threaded: list[int] = []
    to_thread = asyncio.to_thread

    async def counted(func: object, *args: object) -> object:
        threaded.append(len(args[0]))  # type: ignore[arg-type]
        return await to_thread(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("ingress.images.asyncio.to_thread", counted)
    png = encode(square(8, (2, 2, 5, 5)))
    exif = b"II*\x00" + struct.pack("<IH", 8, 0) + b"\x00" * 4 + b"\x00" * 100_000
    heavy = png[:33] + png_chunk(b"eXIf", exif) + png[33:]
    for data in (png, heavy):
        asyncio.run(features_body(DIGITS, NAMES, "image/png", data))
    assert threaded == [1]
