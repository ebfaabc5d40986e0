"""`eval score -b synthetic` on detection items reports COCO mAP over the set and the per-item RL reward."""

import json

import pytest

from visionr1.evaluation.score import score_predictions
from visionr1.rewards.detection import dataset_map, score_detection


def test_synthetic_detection_metrics(tmp_path, fixtures):
    from visionr1.tasks.synthetic import make_synthetic

    make_synthetic("detection", 8, 2, tmp_path / "syn", difficulty="medium", test_fraction=0.5)
    rows = [json.loads(line) for line in (tmp_path / "syn" / "test.jsonl").read_text().splitlines()]
    perfect, partial, extra, broken = rows
    half = json.dumps(json.loads(partial["solution"])[:1] + [{"bbox_2d": [1, 1, 9, 9], "label": "red circle"}])
    responses = {
        perfect["id"]: f"<think>look</think><answer>{perfect['solution']}</answer>",
        partial["id"]: f"<think>look</think><answer>{half}</answer>",
        extra["id"]: f"<think>look</think><answer>{json.dumps(json.loads(extra['solution']) * 2)}</answer>",
        broken["id"]: '<think>look</think><answer>[{"bbox_2d": [1, 2</answer>',
    }
    fixtures.predictions(tmp_path / "p.jsonl", responses, id_field="id")
    summary = score_predictions("synthetic", tmp_path / "syn", tmp_path / "p.jsonl", tmp_path / "out")

    answers = [responses[r["id"]].split("<answer>")[1].split("</answer>")[0] for r in rows]
    expected = dataset_map(answers, [r["solution"] for r in rows])
    rewards = [score_detection(a, r["solution"]) for a, r in zip(answers, rows, strict=True)]
    m = summary["metrics"]
    assert 0 < m["detection_map"] < 1 and m["detection_map"] == pytest.approx(expected["map"])
    assert m["detection_map_50"] == pytest.approx(expected["map_50"])
    assert m["detection_reward"] == pytest.approx(sum(rewards) / 4)
    assert rewards[0] == 1.0 and rewards[2] == 0.5 and rewards[3] == 0.0
    assert summary["correct"] == sum(r >= 0.5 for r in rewards)
    assert m["format"] == 1.0 and summary["breakdowns"]["synthetic_task"]["detection"]["total"] == 4
