"""Tiny models load, generate and train like real Qwen-VL checkpoints (no download)."""

import json

import pytest
import torch
from PIL import Image

from visionr1.models.tiny import FAMILIES, INFO_FILE, build_tiny_model, chat_template, get_tiny_model

CLASSES = {
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", "Qwen2VLVideoProcessor"),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor", "Qwen3VLVideoProcessor"),
}
# The tests below check Qwen-VL specifics (placeholders, image processor, video grid); every other family has
# its own file under tests/families/.
QWEN = tuple(CLASSES)
assert set(QWEN) <= set(FAMILIES)


@pytest.fixture(scope="module")
def model_dirs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-cache")
    dirs = {f: get_tiny_model(f, "test", cache_root=root) for f in QWEN if f != "qwen2_5_vl"}
    dirs["qwen2_5_vl"] = tiny_model_dir
    return dirs


@pytest.fixture(scope="module")
def loaded(model_dirs):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return {
        f: (AutoModelForImageTextToText.from_pretrained(d), AutoProcessor.from_pretrained(d))
        for f, d in model_dirs.items()
    }


def _image(color=(220, 40, 40), size=112):
    img = Image.new("RGB", (size, size), "white")
    img.paste(color, (20, 30, 50, 60))
    return img


def _messages(text="How many red circles are there?", answer=None):
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


@pytest.mark.parametrize("family", QWEN)
def test_round_trip_loads_real_classes_and_generates_from_an_image(family, model_dirs, loaded):
    model, processor = loaded[family]
    model_cls, proc_cls, video_cls = CLASSES[family]
    assert type(model).__name__ == model_cls
    assert type(processor).__name__ == proc_cls
    assert type(processor.video_processor).__name__ == video_cls
    assert type(processor.image_processor).__name__ == "Qwen2VLImageProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2Tokenizer"
    tok = processor.tokenizer
    # The config's special ids are the tokenizer's.
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_start_token_id == tok.convert_tokens_to_ids("<|vision_start|>")
    assert model.generation_config.eos_token_id[0] == tok.convert_tokens_to_ids("<|im_end|>") == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    info = json.loads((model_dirs[family] / INFO_FILE).read_text())
    assert info["family"] == family and info["parameters"]["total"] == model.num_parameters()

    text = processor.apply_chat_template(_messages(), add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[_image()], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert out.shape == (1, inputs["input_ids"].shape[1] + 6)
    assert isinstance(processor.batch_decode(out[:, inputs["input_ids"].shape[1] :])[0], str)


@pytest.mark.parametrize("family", QWEN)
def test_forward_backward_with_images_reaches_vision_tower_and_lm(family, loaded):
    model, processor = loaded[family]
    model.train()
    model.zero_grad()
    texts = [
        processor.apply_chat_template(_messages(q, a), tokenize=False)
        for q, a in [("How many?", "<think>one</think><answer> 1 </answer>"), ("Colour?", "red")]
    ]
    processor.tokenizer.padding_side = "right"
    batch = processor(text=texts, images=[_image(), _image((40, 80, 220), 140)], return_tensors="pt", padding=True)
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loss = model(**batch).loss
    assert torch.isfinite(loss)
    loss.backward()
    vision_grad = sum(p.grad.abs().sum() for p in model.model.visual.parameters() if p.grad is not None)
    lm_grad = model.lm_head.weight.grad.abs().sum()
    assert vision_grad > 0 and lm_grad > 0
    model.zero_grad()
    model.eval()


@pytest.mark.parametrize("family", QWEN)
def test_video_prompt_runs_through_the_video_processor(family, loaded):
    model, processor = loaded[family]
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What moves?"}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|video_pad|><|vision_end|>" in text
    frames = [_image((40 + 40 * i, 80, 220)) for i in range(4)]
    inputs = processor(text=[text], videos=[frames], return_tensors="pt")
    n_video_tokens = int((inputs["input_ids"] == model.config.video_token_id).sum())
    assert n_video_tokens == int(inputs["video_grid_thw"].prod(-1).sum()) // 4 > 0
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("family", QWEN)
def test_chat_template_renders_images_and_generation_prompt_like_the_real_one(family, loaded):
    _, processor = loaded[family]
    text = processor.apply_chat_template(_messages("Q?"), add_generation_prompt=True, tokenize=False)
    system = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" if family != "qwen3_vl" else ""
    assert text == f"{system}<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q?<|im_end|>\n<|im_start|>assistant\n"
    # The processor expands the placeholder to one token per merged 2x2 patch group: 112px -> 4x4 = 16.
    inputs = processor(text=[text], images=[_image()], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.image_token_id).sum()) == 16
    assert processor.tokenizer.chat_template == processor.chat_template == chat_template(family)


@pytest.mark.parametrize("family", QWEN)
def test_trl_recognises_the_template_for_assistant_only_loss(family, loaded):
    from trl.chat_template_utils import get_training_chat_template, is_chat_template_stop_token_trained

    _, processor = loaded[family]
    training = get_training_chat_template(processor)
    assert training is not None and "{%- generation" in training.replace("{% generation", "{%- generation")
    assert is_chat_template_stop_token_trained(processor, chat_template=training)
    out = processor.apply_chat_template(
        _messages("Q?", "<think>a</think><answer> 1 </answer>"),
        chat_template=training,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        images=[_image()],
    )
    ids = torch.tensor(out["input_ids"]).flatten()
    mask = torch.tensor(out["assistant_masks"]).flatten().bool()
    assert processor.tokenizer.decode(ids[mask]) == "<think>a</think><answer> 1 </answer><|im_end|>\n"


def test_tokenizer_has_real_special_tokens_in_order_and_single_token_reasoning_tags(loaded):
    from transformers import AutoTokenizer

    _, processor = loaded["qwen2_5_vl"]
    tok = processor.tokenizer
    order = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
             "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
             "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>"]
    ids = tok.convert_tokens_to_ids(order)
    assert ids == list(range(ids[0], ids[0] + len(order)))
    text = "<think>Wait, 3 red circles.</think><answer> Final Answer:3 </answer>"
    enc = tok(text)["input_ids"]
    for tag in ("<think>", "</think>", "<answer>", "</answer>"):
        assert tok.convert_tokens_to_ids(tag) in enc
    assert tok.decode(enc + [tok.eos_token_id], skip_special_tokens=True) == text
    assert tok.decode(tok("naïve 数学 ∑ 😀")["input_ids"]) == "naïve 数学 ∑ 😀"  # byte-level: no unknowns
    assert type(AutoTokenizer.from_pretrained(processor.tokenizer.name_or_path)).__name__ == "Qwen2Tokenizer"


def test_build_is_deterministic_and_seeded(tiny_model_dir, tmp_path):
    again = build_tiny_model("qwen2_5_vl", "test", tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (tiny_model_dir / name).read_bytes(), name
    other = build_tiny_model("qwen2_5_vl", "test", tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != (tiny_model_dir / "model.safetensors").read_bytes()


def test_get_tiny_model_builds_once_per_key(tmp_path, monkeypatch):
    calls = []
    import visionr1.models.tiny as tiny

    real = tiny.build_tiny_model
    monkeypatch.setattr(tiny, "build_tiny_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setenv("VISIONR1_CACHE", str(tmp_path))
    first = get_tiny_model("qwen2_vl", "test")
    assert get_tiny_model("qwen2_vl", "test") == first and len(calls) == 1
    assert first.parent == tmp_path / "tiny" and first.name.startswith("qwen2_vl-test-")
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")]  # no temporary dirs left
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        get_tiny_model("qwen2_vl", "huge")
    with pytest.raises(ValueError, match="unknown family"):
        get_tiny_model("llava", "test")
