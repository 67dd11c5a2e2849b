"""The multi-process path without a GPU: torchrun starts two CPU workers (gloo) and their
data-parallel run ends with the same adapter as one process that accumulates the same two
micro-batches per step (the loss is normalised per answer token over all ranks). A tiny
randomly initialised Llama with the real student tokenizer keeps it cheap."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from services.common.artifacts import ArtifactStore
from tests.helpers.services import free_port
from tests.helpers.trainer_data import SPEC, student_path, write_train

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    cache = None if os.environ.get("DISTILLERY_TEST_STUDENT_DIR") else request.getfixturevalue("model_cache")
    tokenizer = AutoTokenizer.from_pretrained(str(student_path(cache)))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def _launcher_env() -> dict[str, str]:
    """This environment without a launcher's rank variables: torchrun (or none) sets them."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def _run(tmp_path: Path, student: Path, name: str, launcher: list[str], grad_accum: int) -> dict[str, torch.Tensor]:
    request = {"task": {"name": SPEC.name, "type": "TASK_TYPE_CLASSIFICATION", "description": SPEC.description,
                        "labels": SPEC.labels},
               "train": {"uri": str(write_train(tmp_path / "train.jsonl"))}, "student": {"uri": str(student)},
               "config": {"max_steps": 3, "batch_size": 4, "grad_accum": grad_accum, "lora_dropout": 0.0,
                          "learning_rate": 1e-3, "checkpoint_every_steps": 0, "max_seq_len": 96, "seed": 3}}
    (tmp_path / f"{name}.json").write_text(json.dumps(request))
    out = tmp_path / name
    env = _launcher_env()
    done = subprocess.run([*launcher, "-m", "services.trainer.run_job", "--request", str(tmp_path / f"{name}.json"),
                           "--out", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    adapter = ArtifactStore((out / "store").as_uri()).local_path(result["adapter_artifact"]["uri"])
    return {"device": result["device"], **load_file(str(adapter / "adapter_model.safetensors"))}


def test_two_cpu_ranks_match_one_process_with_accumulation(tmp_path: Path, tiny_student: Path) -> None:
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    single = _run(tmp_path, tiny_student, "single", [sys.executable], grad_accum=2)
    ddp = _run(tmp_path, tiny_student, "ddp", [torchrun, "--standalone", "--nnodes=1", "--nproc_per_node=2"],
               grad_accum=1)
    assert "world_size=2" in ddp.pop("device") and "world_size=1" in single.pop("device")
    assert single.keys() == ddp.keys()
    for name in single:
        torch.testing.assert_close(ddp[name], single[name], rtol=1e-4, atol=1e-5, msg=name)


def test_two_nodes_with_the_jobs_torchrun_command_match_one_process(tmp_path: Path, tiny_student: Path) -> None:
    """What each pod of a 2-node Indexed Job runs (services.trainer.k8s_jobs.torchrun_command), as two
    node processes on loopback: pod 0's name becomes 127.0.0.1, $(TORCHRUN_NODE_RANK) the index
    Kubernetes would expand, and the run directory one folder that both "nodes" mount (the
    ReadWriteMany store). Static rendezvous, one gloo process per node: the same adapter as one
    process accumulating the same two micro-batches."""
    from services.trainer.k8s_jobs import RENDEZVOUS_PORT, torchrun_command

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    single = _run(tmp_path, tiny_student, "single", [sys.executable], grad_accum=2)
    request = tmp_path / "single.json"
    port = str(free_port())
    out = tmp_path / "two-nodes"
    env = _launcher_env()
    raw = json.loads(request.read_text())
    raw["config"]["grad_accum"] = 1
    request.with_name("two-nodes.json").write_text(json.dumps(raw))
    nodes = []
    for rank in ("0", "1"):
        argv = torchrun_command(["python", "-m", "services.trainer.run_job", "--request",
                                 str(tmp_path / "two-nodes.json"), "--out", str(out)], gpus=0, nodes=2,
                                rendezvous="127.0.0.1", node_rank=rank)
        argv = [torchrun if a == "torchrun" else a.replace(f"={RENDEZVOUS_PORT}", f"={port}") for a in argv]
        assert f"--node_rank={rank}" in argv and "--nnodes=2" in argv
        nodes.append(subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    logs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    result = json.loads((out / "result.json").read_text())  # node 0 (global rank 0) writes it
    assert "world_size=2" in result["device"]
    adapter = ArtifactStore((out / "store").as_uri()).local_path(result["adapter_artifact"]["uri"])
    two_nodes = load_file(str(adapter / "adapter_model.safetensors"))
    single.pop("device")
    assert single.keys() == two_nodes.keys()
    for name in single:
        torch.testing.assert_close(two_nodes[name], single[name], rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_on_the_cpu_autocasts_trains_and_merges_into_float32(tmp_path: Path, tiny_student: Path) -> None:
    """`training.dtype: bfloat16` on the CPU: the base in bf16 under torch.autocast("cpu"), the
    recipe docs/trainer.md measured; the loss falls and "auto" still merges into float32 (what the
    ONNX export and CPU serving read)."""
    from services.common.taskspec import Example
    from services.trainer.config import TrainingConfig
    from services.trainer.devices import setup_runtime
    from services.trainer.loop import train
    from services.trainer.merge import save_merged
    from tests.helpers.trainer_data import train_rows

    runtime = setup_runtime("cpu", "bfloat16")
    assert runtime.autocast and runtime.dtype == torch.bfloat16 and runtime.merged_dtype == torch.float32
    config = TrainingConfig(max_steps=6, batch_size=4, learning_rate=1e-3, eval_fraction=0.0, lora_dropout=0.0,
                            checkpoint_every_steps=0, max_seq_len=96, seed=3, dtype="bfloat16")
    outcome = train(tiny_student, SPEC, [Example.from_dict(r) for r in train_rows()], config, tmp_path / "w", runtime)
    assert "bfloat16" in outcome.metrics["device"]
    base = next(p for n, p in outcome.model.named_parameters() if "lora_" not in n)
    assert base.dtype == torch.bfloat16  # the frozen base is held in bf16
    losses = [h["loss"] for h in outcome.metrics["history"] if h.get("loss") is not None]
    assert losses[-1] < losses[0], losses
    merged = save_merged(outcome.model, outcome.tokenizer, tmp_path / "merged", tiny_student, "auto",
                         runtime.merged_dtype)
    weights = load_file(str(merged / "model.safetensors"))
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
