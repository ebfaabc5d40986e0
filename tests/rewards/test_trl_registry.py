"""TRL compatibility (called exactly as the installed GRPOTrainer calls reward functions) and the registry."""

import pickle
from types import SimpleNamespace

import pytest

from visionr1.recipe import RewardSpec
from visionr1.rewards.registry import ALL_NAMES, NamedReward, build_reward_funcs, get_reward_function

WELL = "<think>2+2=4</think><answer> Final Answer: 4 </answer>"


def test_grpo_trainer_calculate_rewards_with_our_functions():
    """Run TRL's own GRPOTrainer._calculate_rewards on a stub trainer: same kwargs, same name handling."""
    import torch
    from trl import GRPOTrainer
    from trl.trainer.utils import get_callable_name, is_async_callable

    rf = build_reward_funcs(["format", "accuracy", "hard_format_result", {"name": "length", "weight": 0.5}])
    assert [get_callable_name(f) for f in rf.funcs] == ["format", "accuracy", "hard_format_result", "length"]
    assert not any(is_async_callable(f) for f in rf.funcs)
    logged = []
    stub = SimpleNamespace(
        accelerator=SimpleNamespace(device=torch.device("cpu"), is_main_process=True),
        reward_funcs=rf.funcs,
        reward_processing_classes=[None] * len(rf.funcs),
        reward_func_names=rf.names,
        state=SimpleNamespace(global_step=0),
        args=SimpleNamespace(report_to=[]),
        environments=None,
        _log_completion_extra=lambda *a, **k: None,
        _log_metric=lambda *a, **k: logged.append(a),
    )
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "2+2?"}]}]
    inputs = [
        {"prompt": prompt, "solution": "4", "task": "math", "choices": None, "id": "a", "metadata": "{}"},
        {"prompt": prompt, "solution": "B", "task": "choice", "choices": ["3", "4"], "id": "b", "metadata": "{}"},
    ]
    completions = [
        [{"role": "assistant", "content": WELL}],  # conversational, string content
        [{"role": "assistant", "content": [{"type": "text", "text": "<think>x</think><answer>(A)</answer>"}]}],
    ]
    calc = GRPOTrainer._calculate_rewards.__wrapped__
    out = calc(stub, inputs, [prompt, prompt], completions, [[1, 2, 3, 4, 5], [1, 2]])
    assert out.shape == (2, 4)
    assert out[:, 0].tolist() == [1.0, 1.0]  # format
    assert out[:, 1].tolist() == [1.0, 0.0]  # accuracy
    assert out[:, 2].tolist() == [1.0, 0.0]  # hard_format_result
    assert out[:, 3].tolist() == pytest.approx([0.005, 0.002])  # length from completion_ids


def test_llm_judge_is_seen_as_async_by_trl():
    from trl.trainer.utils import get_callable_name, is_async_callable

    judge = get_reward_function("llm_judge", base_url="http://127.0.0.1:9/v1", model="m")
    assert is_async_callable(judge) and get_callable_name(judge) == "llm_judge"


def test_registry_names_weights_and_specs():
    rf = build_reward_funcs([RewardSpec(name="hard_format_result"), RewardSpec(name="length", weight=0.1, kwargs={"per_token": 0.01})])
    assert rf.names == ["hard_format_result", "length"] and rf.weights == [1.0, 0.1]
    assert rf.funcs[1](completions=["a b c d"]) == [pytest.approx(0.04)]
    assert set(ALL_NAMES) >= {"format", "accuracy", "hard_format_result", "iou", "length", "llm_judge"}


def test_registry_errors_name_the_fix():
    with pytest.raises(ValueError, match="did you mean 'accuracy'"):
        get_reward_function("acuracy")
    with pytest.raises(ValueError, match="did you mean 'per_token'"):
        get_reward_function("length", per_tokn=0.1)
    with pytest.raises(ValueError, match="at least one"):
        build_reward_funcs([])
    with pytest.raises(ValueError, match="needs an endpoint"):
        get_reward_function("llm_judge")


def test_bound_kwargs_apply_and_reward_pickles():
    fn = get_reward_function("format", think_prefilled=True)
    assert fn(completions=["thoughts</think><answer>1</answer>"]) == [1.0]
    clone = pickle.loads(pickle.dumps(fn))
    assert isinstance(clone, NamedReward) and clone.__name__ == "format"
    assert clone(completions=["thoughts</think><answer>1</answer>"]) == [1.0]


def test_plugin_file_function(tmp_path):
    plugin = tmp_path / "my_rewards.py"
    plugin.write_text(
        "def shouting(completions, bonus=1.0, **kwargs):\n"
        "    return [bonus if str(c).isupper() else 0.0 for c in completions]\n"
    )
    fn = get_reward_function(f"{plugin}:shouting", bonus=2.0)
    assert fn.__name__ == "shouting" and fn(completions=["HI", "hi"]) == [2.0, 0.0]
    rf = build_reward_funcs([{"name": "my_rewards.py:shouting"}], base_dir=tmp_path)
    assert rf.names == ["shouting"]
    with pytest.raises(ValueError, match="has no function 'nope'.*shouting"):
        get_reward_function(f"{plugin}:nope")
    with pytest.raises(ValueError, match="not found"):
        get_reward_function(f"{tmp_path}/missing.py:f")
