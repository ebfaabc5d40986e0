"""Video records: uniformly sampled frames, decoded with PyAV, become a multi-image prompt."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from visionr1.data import load_samples

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def reference_greys(path) -> list[float]:
    """Mean grey of the top half of every frame, decoded independently of the loader."""
    with av.open(str(path)) as c:
        return [float(np.asarray(f.to_image())[: f.height // 2].mean()) for f in c.decode(video=0)]


def top_grey(img) -> float:
    arr = np.asarray(img)
    return float(arr[: arr.shape[0] // 2].mean())


def close(a, b, tol=30):
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("container", ["clip.mp4", "clip.mkv"])  # mkv headers carry no frame count
def test_uniform_frames_in_order(tmp_path, fx, spec, container):
    video = fx.write_video(tmp_path / container, n_frames=30, size=(64, 48))
    f = fx.write_jsonl(
        tmp_path / "v.jsonl",
        [{"id": "v1", "video": container, "question": "<video>What colour comes last?", "solution": "C",
          "choices": ["red", "green", "blue"], "metadata": {"source": "synthetic"}}],
    )
    row = load_samples(spec(format="video", path=str(f), video={"num_frames": 3})).dataset[0]
    meta = json.loads(row["metadata"])
    assert meta["frame_indices"] == [5, 15, 25] and meta["video_frames"] == 30 and meta["video_fps"] == 10
    assert meta["source"] == "synthetic"
    frames = row["images"]
    assert len(frames) == 3 and all(im.mode == "RGB" and im.size == (64, 48) for im in frames)
    # the bottom colour block tells the third of the clip, the top grey the exact frame
    assert close(fx.mean_color(frames[0], (0, 24, 64, 48)), RED)
    assert close(fx.mean_color(frames[1], (0, 24, 64, 48)), GREEN)
    assert close(fx.mean_color(frames[2], (0, 24, 64, 48)), BLUE)
    ref = reference_greys(video)
    assert [round(top_grey(im)) for im in frames] == [round(ref[i]) for i in (5, 15, 25)]
    # one image part per frame, after the intro text, then the question with its options
    content = row["prompt"][0]["content"]
    assert [p["type"] for p in content] == ["text", "image", "image", "image", "text"]
    assert content[0]["text"] == "The frames of a video, in order:"
    assert content[-1]["text"].startswith("What colour comes last?\nChoices:\nA. red\nB. green\nC. blue")
    assert row["question"] == "What colour comes last?" and row["task"] == "choice"


def test_fps_short_video_and_frame_resize(tmp_path, fx, spec):
    fx.write_video(tmp_path / "long.mp4", n_frames=30, size=(64, 48))  # 3 s at 10 fps
    fx.write_video(tmp_path / "short.mp4", n_frames=4, size=(64, 48))
    f = fx.write_jsonl(
        tmp_path / "v.jsonl",
        [
            {"id": "long", "video": "long.mp4", "question": "Q", "solution": "1", "task": "count"},
            {"id": "short", "video": "short.mp4", "question": "Q", "solution": "1", "task": "count"},
        ],
    )
    ds = load_samples(spec(format="video", path=str(f), video={"num_frames": 16, "fps": 1.0, "max_pixels": 784})).dataset
    long_, short = ds[0], ds[1]
    assert json.loads(long_["metadata"])["frame_indices"] == [5, 15, 25]  # 3 s x 1 fps
    assert all(im.size[0] * im.size[1] <= 784 and abs(im.size[0] / im.size[1] - 64 / 48) < 0.1 for im in long_["images"])
    assert json.loads(short["metadata"])["frame_indices"] == [2]  # 0.4 s x 1 fps -> at least one (the centre)
    ds = load_samples(spec(format="video", path=str(f), video={"num_frames": 16})).dataset
    assert len(ds[0]["images"]) == 16 and json.loads(ds[1]["metadata"])["frame_indices"] == [0, 1, 2, 3]
