"""Bad input: every case fails with the file, the record id and the field named, or, with
skip_bad_records, is skipped, counted in LoadResult.skipped and reported in a warning. Nothing silent."""

from __future__ import annotations

import logging

import pytest

from visionr1.data import DataError, load_samples

RED = (255, 0, 0)


def load_both_ways(spec_fn, caplog, **kw):
    """Strict load must raise; skipping load returns the result; the skip warning must have been logged."""
    with pytest.raises(DataError) as strict:
        load_samples(spec_fn(**kw))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="visionr1.data"):
        res = load_samples(spec_fn(skip_bad_records=True, **kw))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"skipped {len(res.skipped)} of" in w for w in warnings), warnings
    return strict.value, res


def jsonl_records(fx, tmp_path, bad: dict) -> str:
    fx.write_png(tmp_path / "images" / "ok.png", RED)
    good = {"id": "good", "task": "count", "question": "How many?", "images": ["images/ok.png"], "solution": "1"}
    return str(fx.write_jsonl(tmp_path / "train.jsonl", [good, {**good, **bad}]))


def test_missing_image_file(tmp_path, fx, spec, caplog):
    path = jsonl_records(fx, tmp_path, {"id": "r2", "images": ["images/nope.png"]})
    err, res = load_both_ways(spec, caplog, format="jsonl", path=path)
    assert err.file == path and err.record_id == "r2" and err.field == "images[0]"
    assert "image file not found" in str(err) and "nope.png" in str(err)
    assert str(err).startswith(f"{path}: record r2: field images[0]: ")
    assert res.dataset["id"] == ["good"]
    assert res.skipped == [("r2", f"field images[0]: image file not found: {tmp_path / 'images' / 'nope.png'}")]


def test_corrupt_image_file_and_header_only_mode(tmp_path, fx, spec, caplog):
    whole = fx.png_bytes(RED, size=(64, 64))
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "trunc.png").write_bytes(whole[: len(whole) // 2])  # header fine, pixels cut off
    path = jsonl_records(fx, tmp_path, {"id": "r2", "images": ["images/trunc.png"]})
    err, res = load_both_ways(spec, caplog, format="jsonl", path=path)
    assert err.record_id == "r2" and err.field == "images[0]" and "corrupt image" in str(err)
    assert len(res.dataset) == 1 and res.skipped[0][0] == "r2"
    # verify_images: false reads headers only: the truncation is not seen at load time (documented trade-off)
    assert len(load_samples(spec(format="jsonl", path=path, verify_images=False)).dataset) == 2


def test_not_an_image_in_parquet_bytes(tmp_path, fx, spec, caplog):
    rows = [fx.geo_row(), fx.geo_row()]
    rows[1]["images"] = [{"bytes": b"this is not a png", "path": None}]
    path = str(fx.write_geometry3k(tmp_path / "geo.parquet", rows))
    err, res = load_both_ways(spec, caplog, format="geometry3k", path=path)
    assert (err.file, err.record_id, err.field) == (path, "geo-1", "images[0]")
    assert "not a readable image" in err.reason
    assert res.dataset["id"] == ["geo-0"]


def test_missing_column_is_never_skipped(tmp_path, fx, spec):
    from datasets import Dataset

    f = tmp_path / "geo.parquet"
    Dataset.from_dict({"images": [[]], "problem": ["Find x."]}).to_parquet(str(f))
    for skip in (False, True):
        with pytest.raises(DataError, match=r"missing column 'answer' required by format 'geometry3k'") as e:
            load_samples(spec(format="geometry3k", path=str(f), skip_bad_records=skip))
        assert e.value.file == str(f) and e.value.field == "answer" and not e.value.record_level
    g = fx.write_json(tmp_path / "s.json", [{"turns": []}])
    with pytest.raises(DataError, match=r"missing column 'messages' or 'conversations'"):
        load_samples(spec(format="sharegpt", path=str(g), skip_bad_records=True))


def test_missing_field_in_one_record(tmp_path, fx, spec, caplog):
    path = jsonl_records(fx, tmp_path, {"id": "r2", "solution": None})
    err, res = load_both_ways(spec, caplog, format="jsonl", path=path)
    assert (err.record_id, err.field, err.reason) == ("r2", "solution", "is null")
    assert res.skipped == [("r2", "field solution: is null")]


@pytest.mark.parametrize(
    "name,content,fmt",
    [
        ("empty.jsonl", "", "jsonl"),
        ("empty.json", "[]", "sharegpt"),
        ("blank.jsonl", "\n\n", "video"),
    ],
)
def test_empty_dataset(tmp_path, spec, name, content, fmt):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(DataError, match="empty dataset") as e:
        load_samples(spec(format=fmt, path=str(f), skip_bad_records=True))
    assert e.value.file == str(f)


def test_empty_parquet(tmp_path, fx, spec):
    f = fx.write_geometry3k(tmp_path / "geo.parquet", [fx.geo_row()])
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(f).slice(0, 0), f)
    with pytest.raises(DataError, match="empty dataset"):
        load_samples(spec(format="geometry3k", path=str(f)))


def test_undecodable_video(tmp_path, fx, spec, caplog):
    fx.write_video(tmp_path / "ok.mp4", n_frames=6)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00 ftypisom" + b"garbage" * 50)
    path = str(
        fx.write_jsonl(
            tmp_path / "v.jsonl",
            [
                {"id": "ok", "video": "ok.mp4", "question": "Colour?", "solution": "red"},
                {"id": "bad", "video": "broken.mp4", "question": "Colour?", "solution": "red"},
                {"id": "gone", "video": "missing.mp4", "question": "Colour?", "solution": "red"},
            ],
        )
    )
    err, res = load_both_ways(spec, caplog, format="video", path=path, video={"num_frames": 2})
    assert (err.record_id, err.field) == ("bad", "video") and "cannot decode video" in err.reason
    assert res.dataset["id"] == ["ok"]
    assert [rid for rid, _ in res.skipped] == ["bad", "gone"]
    assert "video file not found" in res.skipped[1][1]


def test_placeholder_count_mismatch(tmp_path, fx, spec, caplog):
    fx.write_png(tmp_path / "a.png", RED)
    conv = [{"from": "human", "value": "<image><image>Same?"}, {"from": "gpt", "value": "<answer>yes</answer>"}]
    ok = [{"from": "human", "value": "<image>Colour?"}, {"from": "gpt", "value": "<answer>red</answer>"}]
    none = [{"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "<answer>red</answer>"}]
    path = str(
        fx.write_json(
            tmp_path / "s.json",
            [
                {"id": "ok", "conversations": ok, "images": ["a.png"]},
                {"id": "two-markers", "conversations": conv, "images": ["a.png"]},
                {"id": "no-marker", "conversations": none, "images": ["a.png"]},
            ],
        )
    )
    err, res = load_both_ways(spec, caplog, format="sharegpt", path=path)
    assert (err.record_id, err.field) == ("two-markers", "images")
    assert "2 <image> placeholder(s) in the text but 1 image(s)" in err.reason
    assert res.dataset["id"] == ["ok"] and [r for r, _ in res.skipped] == ["two-markers", "no-marker"]

    geo = str(fx.write_geometry3k(tmp_path / "g.parquet", [fx.geo_row(), fx.geo_row("<image> vs <image>?")]))
    err, _ = load_both_ways(spec, caplog, format="geometry3k", path=geo)
    assert (err.record_id, err.field) == ("g-1", "problem")


def test_bad_jsonl_line_and_bad_values(tmp_path, fx, spec, caplog):
    fx.write_png(tmp_path / "images" / "ok.png", RED)
    good = '{"id": "good", "task": "count", "question": "Q", "images": ["images/ok.png"], "solution": "1"}'
    lines = [
        good,
        '{"id": "broken", "task": ',
        '{"id": "badtask", "task": "poetry", "question": "Q", "solution": "1"}',
        '{"id": "badchoices", "task": "choice", "question": "Q", "solution": "A", "choices": "A or B"}',
        '{"id": "badbox", "task": "grounding", "question": "Q", "images": ["images/big.png"], "solution": "left"}',
    ]
    fx.write_png(tmp_path / "images" / "big.png", RED, size=(100, 100))
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(lines) + "\n")
    err, res = load_both_ways(spec, caplog, format="jsonl", path=str(f), max_pixels=2500)
    assert err.record_id == "t-1" and "line 2 is not valid JSON" in err.reason
    assert res.dataset["id"] == ["good"]
    reasons = dict(res.skipped)
    assert set(reasons) == {"t-1", "badtask", "badchoices", "badbox"}
    assert "unknown task 'poetry'" in reasons["badtask"]
    assert reasons["badchoices"].startswith("field choices:")
    assert "grounding solution must be" in reasons["badbox"]


def test_mathvista_answer_not_among_choices(tmp_path, fx, spec):
    fx.write_png(tmp_path / "1.png", RED)
    rec = {"pid": "7", "question": "Q", "image": "1.png", "choices": ["a", "b"], "answer": "c",
           "question_type": "multi_choice", "answer_type": "text"}
    f = fx.write_json(tmp_path / "mv.json", [rec])
    with pytest.raises(DataError, match=r"record 7: field answer: 'c' is not one of the choices") as e:
        load_samples(spec(format="mathvista", path=str(f)))
    assert e.value.file == str(f)


def test_all_records_bad_is_an_error_even_when_skipping(tmp_path, fx, spec, caplog):
    path = str(fx.write_jsonl(tmp_path / "t.jsonl", [{"id": "x", "task": "count", "question": "Q", "images": ["no.png"], "solution": "1"}]))
    with caplog.at_level(logging.WARNING, logger="visionr1.data"):
        with pytest.raises(DataError, match=r"no usable records: all 1 records read were bad \(first: x: field images\[0\]"):
            load_samples(spec(format="jsonl", path=path, skip_bad_records=True))
    assert any("skipped 1 of 1 records" in r.getMessage() for r in caplog.records)


def test_missing_path(tmp_path, spec):
    with pytest.raises(DataError, match="no such file or directory") as e:
        load_samples(spec(format="jsonl", path=str(tmp_path / "nowhere")))
    assert e.value.file == str(tmp_path / "nowhere")


def test_conversation_must_end_with_assistant(tmp_path, fx, spec):
    f = fx.write_json(tmp_path / "s.json", [{"messages": [{"role": "user", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"record s-0: field messages: the conversation must end with an assistant turn"):
        load_samples(spec(format="sharegpt", path=str(f)))
    g = fx.write_json(tmp_path / "r.json", [{"messages": [{"role": "bot", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"field messages\[0\].role: unknown role 'bot'"):
        load_samples(spec(format="sharegpt", path=str(g)))
