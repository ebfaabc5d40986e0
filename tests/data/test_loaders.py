"""load_samples on small fixture files in each real format: the canonical sample that comes out."""

from __future__ import annotations

import json

import pytest

from visionr1.data import DataError, load_samples
from visionr1.data.loaders import COLUMNS, canonical_features

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def parts(message):
    return [p["type"] for p in message["content"]]


def texts(message):
    return [p["text"] for p in message["content"] if p["type"] == "text"]


# ----------------------------------------------------------------------------------------------------------
# geometry3k
# ----------------------------------------------------------------------------------------------------------

def test_geometry3k_file(tmp_path, fx, spec):
    f = fx.write_geometry3k(
        tmp_path / "geo.parquet",
        [
            fx.geo_row("<image>Find x.", "3", (RED,)),
            fx.geo_row("Compare <image> with <image> and give the area.", "2\\sqrt{3}", (GREEN, BLUE)),
            fx.geo_row("No marker here.", "12", (BLUE,)),
        ],
    )
    res = load_samples(spec(format="geometry3k", path=str(f)))
    ds = res.dataset
    assert list(ds.column_names) == list(COLUMNS)
    assert ds.features == canonical_features()
    assert len(ds) == 3 and res.skipped == [] and res.num_records == 3
    r0, r1, r2 = ds[0], ds[1], ds[2]
    assert [r["id"] for r in (r0, r1, r2)] == ["geo-0", "geo-1", "geo-2"]
    assert {r["task"] for r in (r0, r1, r2)} == {"math"}
    assert r0["question"] == "Find x." and r0["solution"] == "3"
    assert r1["solution"] == "2\\sqrt{3}"
    # <image> markers decide where images go; the template follows the question
    assert [m["role"] for m in r0["prompt"]] == ["user"]
    assert parts(r0["prompt"][0]) == ["image", "text"]
    assert texts(r0["prompt"][0])[0].startswith("Find x.\nThink step by step")
    assert parts(r1["prompt"][0]) == ["text", "image", "text", "image", "text"]
    assert texts(r1["prompt"][0])[:2] == ["Compare", "with"]
    # no marker: images first
    assert parts(r2["prompt"][0]) == ["image", "text"]
    # images: PIL, RGB, in order
    assert [im.mode for im in r1["images"]] == ["RGB", "RGB"]
    assert [fx.mean_color(im) for im in r1["images"]] == [GREEN, BLUE]
    assert r0["choices"] is None and r0["completion"] is None
    assert json.loads(r0["metadata"]) == {}


def test_geometry3k_hub_directory_layout_and_splits(tmp_path, fx, spec):
    fx.write_geometry3k(tmp_path / "data" / "train-00000-of-00002.parquet", [fx.geo_row(answer="1")])
    fx.write_geometry3k(tmp_path / "data" / "train-00001-of-00002.parquet", [fx.geo_row(answer="2")] * 2)
    fx.write_geometry3k(tmp_path / "data" / "test-00000-of-00001.parquet", [fx.geo_row(answer="9")])
    res = load_samples(spec(format="geometry3k", path=str(tmp_path), split="train"))
    assert res.dataset["solution"] == ["1", "2", "2"]
    assert res.dataset["id"] == ["train-00000-of-00002-0", "train-00001-of-00002-0", "train-00001-of-00002-1"]
    assert load_samples(spec(format="geometry3k", path=str(tmp_path), split="test")).dataset["solution"] == ["9"]
    with pytest.raises(DataError, match=r"several splits \(test, train\); set `split`"):
        load_samples(spec(format="geometry3k", path=str(tmp_path)))
    with pytest.raises(DataError, match=r"no split 'validation' here; splits found: test, train"):
        load_samples(spec(format="geometry3k", path=str(tmp_path), split="validation"))


def test_geometry3k_flat_split_files_task_override_and_extra_columns(tmp_path, fx, spec):
    fx.write_geometry3k(tmp_path / "train.parquet", [fx.geo_row(answer="B", source="wemath")])
    res = load_samples(spec(format="geometry3k", path=str(tmp_path), split="train", task="choice"))
    row = res.dataset[0]
    assert row["task"] == "choice"
    assert json.loads(row["metadata"]) == {"source": "wemath"}


def test_resize_keeps_aspect_and_limit_shuffle(tmp_path, fx, spec):
    rows = [fx.geo_row(answer=str(i)) for i in range(6)]
    rows[0]["images"] = [{"bytes": fx.png_bytes(RED, size=(200, 100)), "path": None}]
    f = fx.write_geometry3k(tmp_path / "g.parquet", rows)
    ds = load_samples(spec(format="geometry3k", path=str(f), max_pixels=5000)).dataset
    assert ds[0]["images"][0].size == (100, 50)
    assert ds[1]["images"][0].size == (8, 6)  # small images untouched

    a = load_samples(spec(format="geometry3k", path=str(f), limit=3, shuffle_seed=7)).dataset["id"]
    b = load_samples(spec(format="geometry3k", path=str(f), limit=3, shuffle_seed=7)).dataset["id"]
    c = load_samples(spec(format="geometry3k", path=str(f), limit=3)).dataset["id"]
    assert a == b and len(a) == 3 and c == ["g-0", "g-1", "g-2"]
    assert {tuple(load_samples(spec(format="geometry3k", path=str(f), shuffle_seed=s)).dataset["id"]) for s in range(4)} != {
        tuple(f"g-{i}" for i in range(6))
    }


def test_system_prompt_and_custom_template(tmp_path, fx, spec):
    f = fx.write_geometry3k(tmp_path / "g.parquet", [fx.geo_row("<image>Find x.", "3")])
    s = spec(
        format="geometry3k",
        path=str(f),
        prompt={"template": "Q: {question}\nAnswer in \\boxed{}.", "system": "You are a geometer."},
    )
    row = load_samples(s).dataset[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert texts(row["prompt"][0]) == ["You are a geometer."]
    assert parts(row["prompt"][1]) == ["text", "image", "text"]
    assert texts(row["prompt"][1]) == ["Q:", "Find x.\nAnswer in \\boxed{}."]


# ----------------------------------------------------------------------------------------------------------
# ShareGPT
# ----------------------------------------------------------------------------------------------------------

COT = "<think>The shape is red. Wait, check again: red.</think><answer> Final Answer:red </answer>"


def test_sharegpt_messages_flavour(tmp_path, fx, spec):
    fx.write_png(tmp_path / "imgs" / "a.png", RED)
    f = fx.write_json(
        tmp_path / "cold.json",
        [
            {
                "messages": [
                    {"role": "system", "content": "Reason first."},
                    {"role": "user", "content": "<image>What colour is the shape?"},
                    {"role": "assistant", "content": COT},
                ],
                "images": ["imgs/a.png"],
            },
            {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        ],
    )
    ds = load_samples(spec(format="sharegpt", path=str(f))).dataset
    r0, r1 = ds[0], ds[1]
    assert [m["role"] for m in r0["prompt"]] == ["system", "user"]
    assert parts(r0["prompt"][1]) == ["image", "text"]
    assert texts(r0["prompt"][1]) == ["What colour is the shape?"]
    assert r0["question"] == "What colour is the shape?"
    assert r0["completion"] == [{"role": "assistant", "content": [{"type": "text", "text": COT}]}]
    assert r0["solution"] == "red" and r0["task"] == "free"
    assert fx.mean_color(r0["images"][0]) == RED
    # text-only record, no answer tags: empty solution, no images
    assert r1["images"] == [] and r1["solution"] == "" and parts(r1["prompt"][0]) == ["text"]


def test_sharegpt_conversations_flavour_multi_turn_jsonl(tmp_path, fx, spec):
    fx.write_png(tmp_path / "media" / "a.png", RED)
    fx.write_png(tmp_path / "media" / "b.png", BLUE)
    f = fx.write_jsonl(
        tmp_path / "data" / "sft.jsonl",
        [
            {
                "id": "conv-1",
                "conversations": [
                    {"from": "human", "value": "<image>\nDescribe it."},
                    {"from": "gpt", "value": "A red square."},
                    {"from": "human", "value": "And this one: <image> which is bluer? A or B"},
                    {"from": "gpt", "value": "<think>second</think><answer>B</answer>"},
                ],
                "images": ["a.png", "b.png"],
                "system": "Be careful.",
            }
        ],
    )
    res = load_samples(spec(format="sharegpt", path=str(f), image_root=str(tmp_path / "media"), task="choice"))
    row = res.dataset[0]
    assert row["id"] == "conv-1" and row["task"] == "choice" and row["solution"] == "B"
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user"]
    assert parts(row["prompt"][1]) == ["image", "text"]
    assert texts(row["prompt"][2]) == ["A red square."]
    assert parts(row["prompt"][3]) == ["text", "image", "text"]
    assert row["question"] == "And this one: which is bluer? A or B"
    assert [fx.mean_color(im) for im in row["images"]] == [RED, BLUE]


def test_sharegpt_template_applied_only_when_asked(tmp_path, fx, spec):
    f = fx.write_json(
        tmp_path / "s.json",
        [{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<answer>4</answer>"}]}],
    )
    plain = load_samples(spec(format="sharegpt", path=str(f))).dataset[0]
    assert texts(plain["prompt"][0]) == ["2+2?"]
    templated = load_samples(
        spec(format="sharegpt", path=str(f), prompt={"template": "{question} Think.", "apply_to_sharegpt": True})
    ).dataset[0]
    assert texts(templated["prompt"][0]) == ["2+2? Think."]
    assert templated["question"] == "2+2?"


# ----------------------------------------------------------------------------------------------------------
# MathVista
# ----------------------------------------------------------------------------------------------------------

def mathvista_records():
    return {
        "1": {
            "pid": "1",
            "question": "Which shape is largest?",
            "image": "images/1.png",
            "choices": ["circle", "square", "triangle"],
            "answer": "square",
            "question_type": "multi_choice",
            "answer_type": "text",
            "precision": None,
            "unit": None,
            "metadata": {"category": "math-targeted-vqa", "skills": ["geometry reasoning"]},
        },
        "2": {
            "pid": "2",
            "question": "What is the length of AB?",
            "image": "images/2.png",
            "choices": None,
            "answer": "1.5",
            "question_type": "free_form",
            "answer_type": "float",
            "precision": 1.0,
            "unit": "cm",
        },
    }


def test_mathvista_json_dict_of_pid(tmp_path, fx, spec):
    fx.write_png(tmp_path / "images" / "1.png", RED)
    fx.write_png(tmp_path / "images" / "2.png", GREEN)
    f = fx.write_json(tmp_path / "testmini.json", mathvista_records())
    ds = load_samples(spec(format="mathvista", path=str(f))).dataset
    mc, ff = ds[0], ds[1]
    assert mc["id"] == "1" and mc["task"] == "choice" and mc["solution"] == "B"
    assert mc["choices"] == ["circle", "square", "triangle"]
    assert "Which shape is largest?\nChoices:\nA. circle\nB. square\nC. triangle" in texts(mc["prompt"][0])[0]
    meta = json.loads(mc["metadata"])
    assert meta["answer"] == "square" and meta["question_type"] == "multi_choice" and meta["pid"] == "1"
    assert meta["category"] == "math-targeted-vqa"
    assert ff["task"] == "math" and ff["solution"] == "1.5" and ff["choices"] is None
    meta = json.loads(ff["metadata"])
    assert (meta["answer_type"], meta["precision"], meta["unit"]) == ("float", 1.0, "cm")
    assert fx.mean_color(ff["images"][0]) == GREEN


def test_mathvista_template_with_choices_slot(tmp_path, fx, spec):
    fx.write_png(tmp_path / "images" / "1.png", RED)
    f = fx.write_jsonl(tmp_path / "mv.jsonl", [mathvista_records()["1"]])
    s = spec(format="mathvista", path=str(f), prompt={"template": "{question}\nOptions:\n{choices}\nAnswer:"})
    row = load_samples(s).dataset[0]
    assert texts(row["prompt"][0]) == ["Which shape is largest?\nOptions:\nA. circle\nB. square\nC. triangle\nAnswer:"]


def test_mathvista_hub_parquet_with_decoded_image(tmp_path, fx, spec):
    from datasets import Dataset, Features, Image, List, Value

    recs = list(mathvista_records().values())
    features = Features(
        {
            "pid": Value("string"),
            "question": Value("string"),
            "image": Value("string"),
            "decoded_image": Image(),
            "choices": List(Value("string")),
            "unit": Value("string"),
            "precision": Value("float64"),
            "answer": Value("string"),
            "question_type": Value("string"),
            "answer_type": Value("string"),
        }
    )
    cols = {k: [r.get(k) for r in recs] for k in features if k != "decoded_image"}
    cols["decoded_image"] = [{"bytes": fx.png_bytes(BLUE), "path": None}, {"bytes": fx.png_bytes(GREEN), "path": None}]
    Dataset.from_dict(cols, features=features).to_parquet(str(tmp_path / "data" / "testmini-00000-of-00001.parquet"))
    ds = load_samples(spec(format="mathvista", path=str(tmp_path), split="testmini")).dataset
    assert ds["id"] == ["1", "2"] and ds["solution"] == ["B", "1.5"]
    assert fx.mean_color(ds[0]["images"][0]) == BLUE


# ----------------------------------------------------------------------------------------------------------
# jsonl (CONTRACTS format)
# ----------------------------------------------------------------------------------------------------------

def test_jsonl_contract_format_with_grounding_rescale(tmp_path, fx, spec):
    fx.write_png(tmp_path / "images" / "g.png", RED, size=(200, 100))
    fx.write_png(tmp_path / "images" / "c.png", GREEN)
    fx.write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": "g", "task": "grounding", "question": "Box the square.", "images": ["images/g.png"],
             "solution": "[20, 10, 120, 60]", "choices": None, "metadata": {"difficulty": 1}},
            {"id": "c", "task": "choice", "question": "Colour?", "images": ["images/c.png"], "solution": "A",
             "choices": ["green", "red"], "metadata": {"scene": [{"shape": "square"}], "reasoning": "It is green."},
             "completion": "<think>green</think><answer>A</answer>"},
        ],
    )
    fx.write_jsonl(tmp_path / "test.jsonl", [{"id": "t", "task": "count", "question": "How many?", "solution": "0"}])
    res = load_samples(spec(format="jsonl", path=str(tmp_path), split="train", max_pixels=5000))
    g, c = res.dataset[0], res.dataset[1]
    assert g["images"][0].size == (100, 50)
    assert g["solution"] == "[10, 5, 60, 30]"
    meta = json.loads(g["metadata"])
    assert meta == {"difficulty": 1, "original_solution": "[20, 10, 120, 60]", "original_image_size": [200, 100]}
    assert c["choices"] == ["green", "red"] and "A. green\nB. red" in texts(c["prompt"][0])[0]
    assert c["completion"][0]["content"][0]["text"] == "<think>green</think><answer>A</answer>"
    assert json.loads(c["metadata"])["reasoning"] == "It is green."
    test = load_samples(spec(format="jsonl", path=str(tmp_path), split="test")).dataset
    assert test[0]["images"] == [] and test[0]["task"] == "count"


def test_jsonl_task_from_spec_when_record_has_none(tmp_path, fx, spec):
    f = fx.write_jsonl(tmp_path / "x.jsonl", [{"question": "1+1?", "solution": 2}])
    row = load_samples(spec(format="jsonl", path=str(f), task="math")).dataset[0]
    assert (row["id"], row["task"], row["solution"]) == ("x-0", "math", "2")


# ----------------------------------------------------------------------------------------------------------
# What consumers rely on
# ----------------------------------------------------------------------------------------------------------

def test_formats_share_one_schema_and_work_with_trl(tmp_path, fx, spec):
    from datasets import concatenate_datasets
    from trl.data_utils import prepare_multimodal_messages

    geo = load_samples(spec(format="geometry3k", path=str(fx.write_geometry3k(tmp_path / "g.parquet", [fx.geo_row()]))))
    fx.write_png(tmp_path / "a.png", RED)
    sft = load_samples(
        spec(
            format="sharegpt",
            path=str(
                fx.write_json(
                    tmp_path / "s.json",
                    [{"messages": [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": COT}],
                      "images": ["a.png"]}],
                )
            ),
        )
    )
    both = concatenate_datasets([geo.dataset, sft.dataset])
    assert len(both) == 2
    for row in both:
        msgs = prepare_multimodal_messages(row["prompt"] + (row["completion"] or []), row["images"])
        filled = [p for m in msgs for p in m["content"] if p["type"] == "image"]
        assert len(filled) == len(row["images"]) and all("image" in p for p in filled)


def test_load_result_summary(tmp_path, fx, spec):
    f = fx.write_geometry3k(tmp_path / "g.parquet", [fx.geo_row()])
    res = load_samples(spec(format="geometry3k", path=str(f)))
    assert res.summary() == f"1 samples from {f}"
    assert res.files == [f] and res.source == str(f)


def test_geometry3k_path_only_structs_and_duplicate_id_warning(tmp_path, fx, spec, caplog, monkeypatch):
    import logging

    import pyarrow.parquet as pq

    fx.write_png(tmp_path / "imgs" / "p.png", GREEN)
    f = fx.write_geometry3k(tmp_path / "g.parquet", [{**fx.geo_row(), "id": "same"}] * 2)
    table = pq.read_table(f)  # the first row's image becomes a relative path, as some exports write it
    images = table.column("images").to_pylist()
    images[0] = [{"bytes": None, "path": "imgs/p.png"}]
    pq.write_table(table.set_column(0, "images", [images]), f)
    monkeypatch.chdir(tmp_path / "imgs")  # resolution must be against the parquet's folder, not the cwd
    with caplog.at_level(logging.WARNING, logger="visionr1.data"):
        ds = load_samples(spec(format="geometry3k", path=str(f))).dataset
    assert fx.mean_color(ds[0]["images"][0]) == GREEN and ds["id"] == ["same", "same"]
    assert any("1 ids occur more than once (e.g. same)" in r.getMessage() for r in caplog.records)


def test_sharegpt_videos_are_refused_not_dropped(tmp_path, fx, spec):
    f = fx.write_json(
        tmp_path / "s.json",
        [{"messages": [{"role": "user", "content": "<video>What?"}, {"role": "assistant", "content": "x"}],
          "videos": ["v.mp4"]}],
    )
    with pytest.raises(DataError, match=r"record s-0: field videos: ShareGPT videos are not supported"):
        load_samples(spec(format="sharegpt", path=str(f)))
