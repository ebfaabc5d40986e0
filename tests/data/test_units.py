"""Small pure pieces of the data layer: tables, properties, image modes, doctests."""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from visionr1.data import DataError
from visionr1.data.errors import Where
from visionr1.data.images import fit_max_pixels, parse_pixel_box, prepare_image, rescale_box
from visionr1.data.prompts import answer_from_response, content_parts, render_template, strip_placeholders
from visionr1.data.spec import DatasetSpec
from visionr1.data.video import num_frames_to_sample, sample_indices

WHERE = Where(Path("/d/train.jsonl"), "r1", Path("/d"))


@pytest.mark.parametrize(
    "module", ["errors", "images", "prompts", "video", "sources", "formats", "loaders"]
)
def test_doctests(module):
    mod = importlib.import_module(f"visionr1.data.{module}")
    assert doctest.testmod(mod).failed == 0


@given(st.integers(1, 5000), st.integers(1, 5000), st.integers(784, 1_000_000))
def test_fit_max_pixels_properties(w, h, max_pixels):
    nw, nh = fit_max_pixels(w, h, max_pixels)
    assert 1 <= nw <= w and 1 <= nh <= h
    assert nw * nh <= max_pixels or (nw, nh) == (w, h) and w * h <= max_pixels
    if w * h <= max_pixels:
        assert (nw, nh) == (w, h)
    elif min(nw, nh) > 20:  # aspect kept up to rounding
        assert abs(nw / nh - w / h) / (w / h) < 0.1


@given(st.lists(st.integers(0, 4000), min_size=4, max_size=4))
def test_box_round_trip(xs):
    text = "[" + ", ".join(map(str, xs)) + "]"
    assert parse_pixel_box(text) == tuple(float(x) for x in xs)
    assert rescale_box(text, (100, 50), (100, 50)) == text


@pytest.mark.parametrize(
    "response,expected",
    [
        ("<think>x</think><answer> Final Answer:B </answer>", "B"),
        ("<think>x</think><answer>\nFinal answer: 2\\sqrt{3}\n</answer>", "2\\sqrt{3}"),
        ("<answer>**Final Answer:** 12</answer>", "12"),
        ("<think>maybe <answer>1</answer></think> so <answer>2</answer>", "2"),
        ("<think>only <answer>1</answer> inside</think> and no final", ""),
        ("The answer is 3.", ""),
        ("<answer>first</answer><answer>second</answer>", "second"),
    ],
)
def test_answer_from_response(response, expected):
    assert answer_from_response(response) == expected


@pytest.mark.parametrize(
    "template,question,choices,expected",
    [
        ("{question}", "Q", None, "Q"),
        ("{question}", "Q", ["x", "y"], "Q\nChoices:\nA. x\nB. y"),
        ("{question}\n{choices}", "Q", ["x"], "Q\nA. x"),
        ("{choices}|{question}", "{choices} in Q", ["x"], "A. x|{choices} in Q"),  # question text is not re-filled
        ("\\boxed{} {question}", "\\frac{1}{2}?", None, "\\boxed{} \\frac{1}{2}?"),
        # the question already lists every option (EasyR1's MATH-V conversion): not listed twice
        ("{question}", "Which? (A) $1$\n(B) two", ["$1$", "two"], "Which? (A) $1$\n(B) two"),
        ("{question}\n{choices}", "Which?\nA. x\nB) y", ["x", "y"], "Which?\nA. x\nB) y\n"),
        # only some of them, or the texts without their letters: still listed
        ("{question}", "Which? (A) x", ["x", "y"], "Which? (A) x\nChoices:\nA. x\nB. y"),
        ("{question}", "Is x or y bigger?", ["x", "y"], "Is x or y bigger?\nChoices:\nA. x\nB. y"),
        # options that are figures, named as the (rewritten) question names them
        ("{question}", "Which?\n(A) (image 2)\n(B) (image 3)", ["<image2>", "<image3>"],
         "Which?\n(A) (image 2)\n(B) (image 3)"),
        ("{question}", "Which?", ["<image2>", "<image3>"], "Which?\nChoices:\nA. (image 2)\nB. (image 3)"),
    ],
)
def test_render_template(template, question, choices, expected):
    assert render_template(template, question, choices) == expected


@pytest.mark.parametrize(
    "text,n,types",
    [
        ("<image>Q", None, ["image", "text"]),
        ("Q<image>", None, ["text", "image"]),
        ("<image><image>Q", None, ["image", "image", "text"]),
        ("a <image> b", None, ["text", "image", "text"]),
        ("Q", 2, ["image", "image", "text"]),
        ("Q", 0, ["text"]),
    ],
)
def test_content_parts(text, n, types):
    assert [p["type"] for p in content_parts(text, n)] == types


def test_strip_placeholders():
    assert strip_placeholders("<image>\n<image> Compare <video>them.") == "Compare them."


def test_template_must_have_question():
    with pytest.raises(ValueError, match=r"must contain \{question\}"):
        DatasetSpec.model_validate({"format": "jsonl", "path": "x", "prompt": {"template": "Answer:"}})


@pytest.mark.parametrize("total,n,expected", [(30, 3, [5, 15, 25]), (10, 10, list(range(10))), (3, 5, [0, 1, 2]), (100, 2, [25, 75])])
def test_sample_indices(total, n, expected):
    assert sample_indices(total, n) == expected


@given(st.integers(1, 10_000), st.integers(1, 256))
def test_sample_indices_properties(total, n):
    idx = sample_indices(total, n)
    assert len(idx) == min(total, n)
    assert idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < total


def test_num_frames_to_sample_with_unknown_rate():
    assert num_frames_to_sample(100, None, 16, 2.0) == 16


# ----------------------------------------------------------------------------------------------------------
# prepare_image: what is stored as is, what is rewritten
# ----------------------------------------------------------------------------------------------------------

def decode(stored):
    """Decode the way the dataset will (datasets' Image(mode="RGB"))."""
    from datasets import Image as ImageFeature

    return ImageFeature(mode="RGB").decode_example(stored.value)


def test_small_rgb_file_is_stored_by_path(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (4, 3), (1, 2, 3)).save(p)
    s = prepare_image("a.png", Where(tmp_path / "x.jsonl", "r", tmp_path), "images[0]", 10_000)
    assert s.value == {"bytes": None, "path": str(p)} and not s.resized


def test_palette_image_is_stored_as_is_and_decodes_to_rgb(tmp_path):
    img = Image.new("P", (4, 4))
    img.putpalette([10, 20, 30] * 256)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    s = prepare_image(buf.getvalue(), WHERE, "images[0]", 10_000)
    assert s.value["bytes"] == buf.getvalue()
    out = decode(s)
    assert out.mode == "RGB" and out.getpixel((0, 0)) == (10, 20, 30)


def test_transparency_goes_on_white_not_black():
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    img.putpixel((0, 0), (0, 0, 0, 255))  # one opaque black "line" pixel
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = decode(prepare_image(buf.getvalue(), WHERE, "images[0]", 10_000))
    assert out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 0)


def test_exif_rotation_is_applied_and_sizes_are_upright():
    img = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    s = prepare_image(buf.getvalue(), WHERE, "images[0]", 10_000)
    assert decode(s).size == (20, 40) and s.original_size == (20, 40)
    s = prepare_image(buf.getvalue(), WHERE, "images[0]", 200)
    assert s.original_size == (20, 40) and s.size == (10, 20)


def test_pil_image_and_16_bit_input():
    s = prepare_image(Image.new("RGB", (3, 3), (9, 9, 9)), WHERE, "images[0]", 10_000)
    assert decode(s).getpixel((0, 0)) == (9, 9, 9)
    deep = Image.new("I;16", (3, 3), 65535)
    assert decode(prepare_image(deep, WHERE, "images[0]", 10_000)).getpixel((0, 0))[0] >= 254


@pytest.mark.parametrize(
    "source,reason",
    [
        ({"bytes": None, "path": None}, "neither bytes nor a path"),
        (b"nope", "not a readable image"),
        ("", "empty image path"),
        (3, "expected an image path"),
        ("missing.png", "image file not found: /d/missing.png"),
    ],
)
def test_prepare_image_errors(source, reason):
    with pytest.raises(DataError, match=reason) as e:
        prepare_image(source, WHERE, "images[0]", 10_000)
    assert str(e.value).startswith("/d/train.jsonl: record r1: field images[0]: ")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("How many digits?\n<image1>", "How many digits?"),  # a lone marker where the image was: removed
        ("<image1>\nHow many digits?", "How many digits?"),
        ("Which fit in the middle so\n<image1>that one can pass?", "Which fit in the middle so that one can pass?"),
        # a lone reference inside a sentence names the figure: kept as a name, never a hole ("showed .")
        ("The clock showed <image1>. Later it showed <image1>.", "The clock showed (image 1). Later it showed (image 1)."),
        ("Look at <image1>, then answer.", "Look at (image 1), then answer."),
        ("The clock showed <image1>. Later it showed <image2>.", "The clock showed (image 1). Later it showed (image 2)."),
    ],
)
def test_rewrite_image_references(text, expected):
    from visionr1.data.prompts import rewrite_image_references

    assert rewrite_image_references(text) == expected
