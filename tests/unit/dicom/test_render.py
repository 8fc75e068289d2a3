from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut

from connrad.dicom.frames import FrameError
from connrad.dicom.render import (
    apply_rescale,
    apply_window,
    fit_within,
    render_frame,
    thumbnail,
)

Reference = Callable[[Path], tuple[Dataset, np.ndarray]]


def decoded(image: bytes) -> np.ndarray:
    return np.asarray(Image.open(BytesIO(image)))


# PS3.3 C.11.2.1.2.1 LINEAR, worked by hand for center 40, width 400 (a CT soft tissue
# window): x <= c - 0.5 - (w-1)/2 = -160 -> 0; x > c - 0.5 + (w-1)/2 = 239 -> 255;
# otherwise ((x - 39.5) / 399 + 0.5) * 255, e.g. x = -100 -> 38.35, x = 40 -> 127.82.
LINEAR_CASES = [(-1000, 0), (-160, 0), (-100, 38), (40, 128), (239, 255), (240, 255)]


@pytest.mark.parametrize(("value", "expected"), LINEAR_CASES)
def test_linear_window(value: float, expected: int) -> None:
    assert apply_window(np.array([value]), 40, 400, "LINEAR")[0] == expected


def test_linear_window_of_width_one_is_a_threshold() -> None:
    # w = 1: x <= c - 0.5 -> 0, else 255.
    values = np.array([-1.0, -0.5, -0.49, 0.0, 5.0])
    assert apply_window(values, 0, 1, "LINEAR").tolist() == [0, 0, 255, 255, 255]


def test_linear_exact_window() -> None:
    # C.11.2.1.3.2: ((x - c) / w + 0.5) * 255, clipped: 50 -> 63.75, 100 -> 127.5.
    values = np.array([0, 50, 100, 200, 300])
    assert apply_window(values, 100, 200, "LINEAR_EXACT").tolist() == [0, 64, 128, 255, 255]


def test_sigmoid_window() -> None:
    # C.11.2.1.3.1: 255 / (1 + exp(-4 (x - c) / w)): c - w -> 4.59, c -> 127.5, c + w -> 250.4.
    values = np.array([-100, 0, 100])
    assert apply_window(values, 0, 100, "sigmoid").tolist() == [5, 128, 250]


@pytest.mark.parametrize(
    ("width", "function"), [(0.5, "LINEAR"), (0, "LINEAR_EXACT"), (-1, "SIGMOID"), (10, "CUBIC")]
)
def test_invalid_window(width: float, function: str) -> None:
    with pytest.raises(ValueError):
        apply_window(np.zeros(3), 0, width, function)


def test_rescale() -> None:
    values = apply_rescale(np.array([0, 1000], dtype=np.uint16), 2.0, -1024.0)
    assert values.tolist() == [-1024.0, 976.0]


@pytest.mark.parametrize(
    ("size", "viewport", "expected"),
    [
        ((512, 256), (128, 128), (128, 64)),
        ((64, 64), (256, 128), (128, 128)),
        ((1760, 1760), (100, 300), (100, 100)),
        ((1000, 1), (10, 10), (10, 1)),
    ],
)
def test_fit_within(
    size: tuple[int, int], viewport: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit_within(*size, viewport) == expected


def test_fit_within_rejects_empty_viewport() -> None:
    with pytest.raises(ValueError):
        fit_within(10, 10, (0, 10))


def ramp_instance(write_instance: Callable[..., Path], photometric: str) -> Path:
    pixels = np.arange(0, 4096, 16, dtype=np.uint16).reshape(16, 16)
    return write_instance(
        pixels.tobytes(),
        Rows=16,
        Columns=16,
        BitsAllocated=16,
        BitsStored=12,
        HighBit=11,
        PhotometricInterpretation=photometric,
    )


def test_monochrome1_renders_inverted(write_instance: Callable[..., Path]) -> None:
    mono1 = decoded(
        render_frame(ramp_instance(write_instance, "MONOCHROME1"), 1, media_type="image/png")
    )
    mono2 = decoded(
        render_frame(ramp_instance(write_instance, "MONOCHROME2"), 1, media_type="image/png")
    )

    assert mono2[0, 0] == 0 and mono2[-1, -1] == 255  # min..max without a window
    np.testing.assert_array_equal(mono1.astype(int), 255 - mono2.astype(int))


def test_signed_pixels_with_rescale_and_explicit_window(
    write_instance: Callable[..., Path],
) -> None:
    pixels = np.linspace(-1000, 1000, 64).astype(np.int16).reshape(8, 8)
    path = write_instance(
        pixels.tobytes(),
        Rows=8,
        Columns=8,
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
        PixelRepresentation=1,
        RescaleSlope=2,
        RescaleIntercept=-24,
    )

    got = decoded(render_frame(path, 1, media_type="image/png", window=(40, 400, "LINEAR")))

    np.testing.assert_array_equal(got, apply_window(pixels * 2.0 - 24, 40, 400, "LINEAR"))


def test_first_window_from_the_file(public: Path, reference_frames: Reference) -> None:
    path = public / "pydicom-data__bad_sequence.dcm"  # CT: windows 40/350 and 450/1500
    _, frames = reference_frames(path)

    got = decoded(render_frame(path, 1, media_type="image/png"))

    np.testing.assert_array_equal(got, apply_window(frames[0] - 1024.0, 40, 350, "LINEAR"))


def test_window_from_functional_groups(public: Path, reference_frames: Reference) -> None:
    # Enhanced CT: rescale and window are in the Shared Functional Groups, not top level.
    path = public / "pydicom-data__eCT_Supplemental.dcm"
    _, frames = reference_frames(path)

    got = decoded(render_frame(path, 2, media_type="image/png"))

    np.testing.assert_array_equal(got, apply_window(frames[1] - 1024.0, 49, 102, "LINEAR"))


def test_monochrome1_file_renders_inverted(public: Path, reference_frames: Reference) -> None:
    path = public / "highdicom__dx_image.dcm"  # MONOCHROME1, window 128/256
    _, frames = reference_frames(path)

    got = decoded(render_frame(path, 1, media_type="image/png"))

    np.testing.assert_array_equal(got, 255 - apply_window(frames[0], 128, 256, "LINEAR"))


@pytest.mark.parametrize(
    "name", ["pydicom-data__OT-PAL-8-face.dcm", "pydicom-data__gdcm-US-ALOKA-16.dcm"]
)
def test_palette_colour_renders_rgb(public: Path, reference_frames: Reference, name: str) -> None:
    ds, frames = reference_frames(public / name)
    rgb = apply_color_lut(frames[0], ds)
    expected = rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)

    got = decoded(render_frame(public / name, 1, media_type="image/png"))

    assert got.shape == (*frames[0].shape, 3)
    np.testing.assert_array_equal(got, expected)


def test_ybr_multiframe_renders_rgb(public: Path, reference_frames: Reference) -> None:
    path = public / "pydicom__examples_ybr_color.dcm"  # 30 frames, JPEG YBR_FULL_422
    _, frames = reference_frames(path)

    got = decoded(render_frame(path, 30, media_type="image/png"))

    np.testing.assert_array_equal(got, frames[29])


@pytest.mark.parametrize(
    ("media_type", "image_format"),
    [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/gif", "GIF")],
)
def test_media_types(public: Path, media_type: str, image_format: str) -> None:
    image = Image.open(
        BytesIO(render_frame(public / "pydicom__MR_small.dcm", 1, media_type=media_type))
    )
    assert image.format == image_format and image.size == (64, 64)


def test_unsupported_media_type(public: Path) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        render_frame(public / "pydicom__MR_small.dcm", 1, media_type="image/webp")


@pytest.mark.parametrize(
    "bad",
    [{"window": (40, 0.5, "LINEAR")}, {"window": (40, 400, "CUBIC")}, {"viewport": (0, 64)}],
)
def test_invalid_rendering_parameters(public: Path, bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        render_frame(public / "pydicom__MR_small.dcm", 1, **bad)  # type: ignore[arg-type]


def test_viewport_keeps_the_aspect_ratio(public: Path) -> None:
    path = public / "pydicom__JPGExtended.dcm"  # 1024 rows x 256 columns

    image = Image.open(BytesIO(render_frame(path, 1, viewport=(200, 200))))

    assert image.size == (50, 200)  # (width, height)


def test_jpeg_quality_changes_the_size(public: Path) -> None:
    path = public / "pydicom__CT_small.dcm"
    assert len(render_frame(path, 1, quality=30)) < len(render_frame(path, 1, quality=95))


def test_thumbnail_is_the_middle_frame(public: Path) -> None:
    path = public / "pydicom__examples_ybr_color.dcm"  # 30 frames of 240 x 320

    small = thumbnail(path, size=64, media_type="image/png")

    assert Image.open(BytesIO(small)).size == (64, 48)
    assert small == render_frame(path, 15, media_type="image/png", viewport=(64, 64))


@pytest.mark.parametrize("frame", [0, 31, -1])
def test_bad_frame_numbers(public: Path, frame: int) -> None:
    with pytest.raises(FrameError):
        render_frame(public / "pydicom__examples_ybr_color.dcm", frame)


def test_decodable_files_render(public: Path, decodable: str) -> None:
    ds = pydicom.dcmread(public / decodable, force=True, stop_before_pixels=True)

    image = Image.open(BytesIO(render_frame(public / decodable, 1, viewport=(96, 96))))

    assert image.format == "JPEG" and max(image.size) == 96
    assert image.mode == ("L" if "MONOCHROME" in ds.PhotometricInterpretation else "RGB")


def test_broken_files_raise_frame_error(public: Path, broken: str) -> None:
    with pytest.raises(FrameError):
        render_frame(public / broken, 1)


def test_any_file_renders_or_raises_frame_error(public: Path, any_file: str) -> None:
    try:
        image = thumbnail(public / any_file, size=32)
    except FrameError:
        return
    assert max(Image.open(BytesIO(image)).size) == 32
