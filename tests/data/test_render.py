"""R1-Vision's augmentation: questions (LaTeX included) rendered with matplotlib mathtext and put in the prompt."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from visionr1.data import DataError, load_samples
from visionr1.data.render import RenderError, RenderSpec, render_question

FIXED = r"If $\frac{x^2}{3} + \sqrt{y} = 12$ and $y = 9$, what is $x$?"
# sha256 of the RGB pixels of FIXED rendered with the default RenderSpec by matplotlib 3.11.2 (constraints.txt).
FIXED_SHA256 = "8317bc33e372d05974327423495343f267f0bc9389a0a04528d5c040ced3f58c"


def ink(img: Image.Image) -> np.ndarray:
    """True where a pixel is not white (the text)."""
    return (np.asarray(img.convert("L")) < 200)


def test_a_fixed_question_renders_to_a_stable_image():
    import matplotlib

    img = render_question(FIXED)
    assert img.mode == "RGB" and img.width == 560
    assert render_question(FIXED).tobytes() == img.tobytes()  # deterministic
    if matplotlib.__version__ == "3.11.2":
        assert hashlib.sha256(img.tobytes()).hexdigest() == FIXED_SHA256
    # It is this question: one line of text, and a different formula gives different pixels.
    rows = np.flatnonzero(ink(img).any(axis=1))
    assert 0 < rows.size and rows[-1] - rows[0] < 60
    assert render_question(FIXED.replace("12", "13")).tobytes() != img.tobytes()
    # mathtext typesets: a stacked fraction is narrower than the same symbols written inline, and taller
    frac, inline = ink(render_question(r"$\frac{ab}{cd}$")), ink(render_question("ab/cd"))
    assert frac.any(axis=0).sum() < 0.7 * inline.any(axis=0).sum()
    assert frac.any(axis=1).sum() > inline.any(axis=1).sum()


def test_long_questions_wrap_within_the_width_and_formulas_stay_whole():
    spec = RenderSpec(width=448, margin=10)
    words = " ".join(f"item {i} costs $\\frac{{{i}}}{{7}}$ dollars;" for i in range(40))  # ~1,500 chars
    assert 1300 < len(words) < 1700
    img = render_question(words, spec)
    mask = ink(img)
    assert img.width == 448 and img.height > 20 * render_question("item 1", spec).height / 2
    assert not mask[:, : spec.margin - 2].any() and not mask[:, -(spec.margin - 2) :].any()  # wrapped, not cut
    short = render_question("item 0 costs $\\frac{0}{7}$ dollars;", spec)
    assert img.height > 10 * short.height  # many lines
    huge = render_question("$" + "+".join(f"x_{{{i}}}" for i in range(80)) + "$", spec)  # wider than a line
    hm = ink(huge)
    assert hm.any() and not hm[:, : spec.margin - 2].any() and not hm[:, -(spec.margin - 2) :].any()  # scaled to fit


def test_dollars_that_are_not_math_and_other_delimiters():
    price = render_question("It costs $5 today.")  # one $: a price, not math
    assert ink(price).any()
    assert render_question(r"\(x^2\) and \[y\]").tobytes() == render_question("$x^2$ and\n$y$").tobytes()


@pytest.mark.parametrize("bad", [r"$\frac{1}{$", r"$\notacommand x$", r"$x^{2$", r"Solve $\begin{array}{c} 1 \end{array}$"])
def test_bad_latex_is_a_render_error(bad):
    with pytest.raises(RenderError, match="mathtext cannot lay out"):
        render_question(bad)


# ------------------------------------------------------------------------------------------------ loader


def _records(tmp_path, fx, rows):
    fx.write_png(tmp_path / "images" / "fig.png", (0, 0, 255), size=(40, 30))
    fx.write_png(tmp_path / "images" / "fig2.png", (0, 255, 0), size=(28, 28))
    return str(fx.write_jsonl(tmp_path / "train.jsonl", rows))


def test_render_question_puts_the_image_where_the_question_was(tmp_path, fx, spec):
    long_q = "A train leaves at $t_0$; " * 60
    rows = [
        {"id": "text-only", "task": "math", "question": r"What is $\frac{1}{2} + \frac{1}{4}$?", "solution": r"\frac{3}{4}"},
        {"id": "fig", "task": "choice", "question": "Which colour is the square?", "images": ["images/fig.png"],
         "solution": "A", "choices": ["blue", "red"]},
        {"id": "two", "task": "count", "question": "How many figures? $n$", "images": ["images/fig.png", "images/fig2.png"],
         "solution": "2"},
        {"id": "long", "task": "math", "question": long_q.strip(), "solution": "1"},
    ]
    path = _records(tmp_path, fx, rows)
    plain = {r["id"]: r for r in load_samples(spec(format="jsonl", path=path)).dataset}
    ds = {r["id"]: r for r in load_samples(spec(format="jsonl", path=path, render_question=True, max_pixels=200_000)).dataset}

    t = ds["text-only"]
    assert [p["type"] for p in t["prompt"][0]["content"]] == ["image", "text"]
    assert len(t["images"]) == 1 and t["question"] == rows[0]["question"]  # the raw text stays in `question`
    assert "frac" not in t["prompt"][0]["content"][1]["text"] and "<think>" in t["prompt"][0]["content"][1]["text"]
    assert json.loads(t["metadata"])["rendered_question"] is True
    assert t["images"][0].tobytes() == render_question(rows[0]["question"]).tobytes()

    f = ds["fig"]
    assert [p["type"] for p in f["prompt"][0]["content"]] == ["image", "image", "text"]
    assert f["images"][0].tobytes() == plain["fig"]["images"][0].tobytes()  # the figure first, then the question
    assert "A. blue\nB. red" in f["prompt"][0]["content"][2]["text"]  # options stay text
    assert json.loads(f["metadata"])["rendered_question_image"] == 1
    assert len(ds["two"]["images"]) == 3 and json.loads(ds["two"]["metadata"])["rendered_question_image"] == 2

    lg = ds["long"]["images"][0]
    assert lg.width * lg.height <= 200_000 and lg.height > lg.width  # max_pixels applies; tall, wrapped


def test_bad_latex_names_file_record_and_field_and_can_be_skipped(tmp_path, fx, spec, caplog):
    rows = [{"id": "ok", "task": "math", "question": "$1+1$?", "solution": "2"},
            {"id": "broken7", "task": "math", "question": r"Find $\frac{1}{$ now", "solution": "2"}]
    path = _records(tmp_path, fx, rows)
    with pytest.raises(DataError) as err:
        load_samples(spec(format="jsonl", path=path, render_question=True))
    e = err.value
    assert (e.file, e.record_id, e.field) == (path, "broken7", "question")
    assert r"\frac{1}{" in str(e) and "render_question: false" in str(e)
    res = load_samples(spec(format="jsonl", path=path, render_question=True, skip_bad_records=True))
    assert res.dataset["id"] == ["ok"] and res.skipped[0][0] == "broken7"


def test_render_spec_is_validated(spec):
    with pytest.raises(ValueError, match="widht"):
        spec(format="jsonl", path="x", render={"widht": 300})


# ------------------------------------------------------------------------------------------------ CLI


def test_data_render_command(tmp_path, fx):
    from visionr1.cli import app

    rows = [{"id": "q/1", "task": "math", "question": r"Is $\sqrt{4} = 2$?", "solution": "yes"},
            {"id": "q2", "task": "math", "question": "Plain text.", "solution": "x"}]
    path = _records(tmp_path, fx, rows)
    runner = CliRunner()
    res = runner.invoke(app, ["data", "render", path, "--format", "jsonl", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["q2.png", "q_1.png"]
    assert Image.open(tmp_path / "out" / "q_1.png").tobytes() == render_question(rows[0]["question"]).tobytes()

    res = runner.invoke(app, ["data", "render", "--text", r"$x^2$", "render.width=300", "--out", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
    assert Image.open(tmp_path / "t" / "question.png").width == 300
    res = runner.invoke(app, ["data", "render", "--text", r"$\frac{1}{$", "--out", str(tmp_path / "t")])
    assert res.exit_code == 2 and "mathtext cannot lay out" in res.output


def test_boxes_follow_their_own_image_when_the_question_image_comes_first(tmp_path, fx, spec):
    """A ShareGPT-style prompt with the question before the figure: the question image goes first in the
    prompt, yet the grounding box is rescaled by the figure's resize, not the question image's."""
    fx.write_png(tmp_path / "images" / "big.png", (255, 0, 0), size=(400, 200))
    rows = [{"id": "g", "task": "grounding", "question": "Box the square. <image>", "images": ["images/big.png"],
             "solution": "[100, 50, 200, 100]"}]
    path = str(fx.write_jsonl(tmp_path / "train.jsonl", rows))
    row = load_samples(spec(format="jsonl", path=path, render_question=True, max_pixels=20_000,
                            prompt={"template": "{question}"})).dataset[0]
    assert [p["type"] for p in row["prompt"][0]["content"]] == ["image", "image"]
    assert json.loads(row["metadata"])["rendered_question_image"] == 0
    assert row["images"][1].size == (200, 100) and row["solution"] == "[50, 25, 100, 50]"
