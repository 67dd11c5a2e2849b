"""Training throughput: answer-and-prompt tokens per second of the trainer's loop (length-grouped
batches, logits only at answer positions) against a plain Hugging Face ``Trainer`` whose collator
pads every example to max length, with the same student, LoRA config, data, batch size, learning
rate and number of steps, in the same run. Tokens are real (non-padding) tokens in both.
Paired: each repeat runs both back to back; figures are medians; the load average is recorded
before and after (``contended`` when it is above the core count).

BF16 on the CPU: on a CPU with AVX-512 BF16 (``bf16`` in /proc/cpuinfo) the benchmark also times a
few steps of our loop with the frozen base in bfloat16 under ``torch.autocast("cpu")`` — the GPU
path's recipe — and records tokens/s and the loss beside fp32's, which decides whether the CPU
default should be bf16 (it is fp32: see the result's ``bf16_autocast``).

Writes benchmarks/results/training.json. Run: python benchmarks/training.py [--steps N] [--repeats R]."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import code_version, contended, load_average, machine  # noqa: E402


def rows(count: int) -> list[dict]:
    from tests.helpers.trainer_data import train_rows

    base = train_rows()
    return [base[i % len(base)] for i in range(count)]


def ours(student: Path, data: list[dict], args: argparse.Namespace, work: Path, steps: int = 0,
         bf16: bool = False) -> tuple[float, float]:
    """(tokens/s, final training loss) of our loop; ``bf16``: base in bfloat16 under CPU autocast."""
    from services.common.taskspec import Example
    from services.trainer.config import TrainingConfig
    from services.trainer.devices import setup_runtime
    from services.trainer.loop import train
    from tests.helpers.trainer_data import SPEC

    config = TrainingConfig(max_steps=steps or args.steps, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
                            lora_r=16, lora_alpha=32, eval_fraction=0.0, checkpoint_every_steps=0, seed=0)
    # training.dtype=bfloat16 on the CPU: the base held in bf16 under torch.autocast("cpu").
    runtime = setup_runtime("cpu", "bfloat16") if bf16 else setup_runtime()
    outcome = train(student, SPEC, [Example.from_dict(r) for r in data], config, work, runtime)
    return outcome.metrics["tokens_trained"] / outcome.seconds, float(outcome.metrics.get("final_train_loss") or 0.0)


def has_bf16() -> bool:
    """AVX-512 BF16, asked the way the generator picks vLLM's CPU dtype (services/generator/vllm_backend.py)."""
    import torch

    return bool(torch.cpu._is_avx512_bf16_supported())


def baseline(student: Path, data: list[dict], args: argparse.Namespace, work: Path) -> float:
    """transformers.Trainer, every example padded to max_seq_len, full-vocabulary logits."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

    from services.common.student_format import render_prompt
    from tests.helpers.trainer_data import SPEC

    tokenizer = AutoTokenizer.from_pretrained(str(student))
    features = []
    for row in data:
        prompt = tokenizer(render_prompt(tokenizer, SPEC, row["input"]), add_special_tokens=False)["input_ids"]
        answer = tokenizer(row["output"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        ids = (prompt + answer)[: args.max_seq_len]
        labels = ([-100] * len(prompt) + answer)[: args.max_seq_len]
        pad = args.max_seq_len - len(ids)
        features.append({"input_ids": ids + [tokenizer.pad_token_id] * pad, "labels": labels + [-100] * pad,
                         "attention_mask": [1] * len(ids) + [0] * pad})
    real_tokens = [0]

    def collate(batch: list[dict]) -> dict:
        out = {k: torch.tensor([f[k] for f in batch]) for k in batch[0]}
        real_tokens[0] += int(out["attention_mask"].sum())
        return out

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(student), dtype=torch.float32, use_safetensors=True)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                                             target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"]))
    training_args = TrainingArguments(output_dir=str(work), per_device_train_batch_size=args.batch_size,
                                      max_steps=args.steps, learning_rate=2e-4, warmup_ratio=0.05,
                                      lr_scheduler_type="linear", logging_strategy="no", save_strategy="no",
                                      report_to=[], use_cpu=not torch.cuda.is_available(),
                                      bf16=torch.cuda.is_available(), dataloader_num_workers=0, seed=0,
                                      disable_tqdm=True)
    trainer = Trainer(model=model, args=training_args, train_dataset=features, data_collator=collate)
    started = time.perf_counter()
    trainer.train()
    return real_tokens[0] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16-steps", type=int, default=2,
                        help="steps of the bf16-autocast check (0: skip)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--examples", type=int, default=120)
    parser.add_argument("--student", type=Path, default=None, help="local checkpoint (default: catalog student)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training.json")
    args = parser.parse_args()
    if args.student is None:
        from services.common.catalog import resolve_model

        cache = Path(os.environ.get("DISTILLERY_MODEL_CACHE") or ROOT / ".cache" / "models")  # as the tests
        args.student = Path(resolve_model("smollm2-135m-instruct", cache))
    data = rows(args.examples)
    load_before = load_average()
    ours_values, base_values = [], []
    for repeat in range(args.repeats):  # paired and alternated, so load changes on a shared machine hit both
        with tempfile.TemporaryDirectory() as tmp:
            if repeat % 2:
                ours_values.append(round(ours(args.student, data, args, Path(tmp) / "ours")[0], 2))
                base_values.append(round(baseline(args.student, data, args, Path(tmp) / "hf"), 2))
            else:
                base_values.append(round(baseline(args.student, data, args, Path(tmp) / "hf"), 2))
                ours_values.append(round(ours(args.student, data, args, Path(tmp) / "ours")[0], 2))
        print(f"repeat {repeat + 1}: ours {ours_values[-1]} tok/s, HF Trainer padded {base_values[-1]} tok/s",
              flush=True)
    bf16: dict = {"measured": False, "reason": "no AVX-512 BF16 on this CPU" if not has_bf16() else "--bf16-steps 0"}
    if has_bf16() and args.bf16_steps > 0:
        with tempfile.TemporaryDirectory() as tmp:
            fp32_rate, fp32_loss = ours(args.student, data, args, Path(tmp) / "fp32", steps=args.bf16_steps)
            bf16_rate, bf16_loss = ours(args.student, data, args, Path(tmp) / "bf16", steps=args.bf16_steps, bf16=True)
        bf16 = {"measured": True, "steps": args.bf16_steps, "fp32_tokens_per_s": round(fp32_rate, 2),
                "bf16_tokens_per_s": round(bf16_rate, 2), "speedup": round(bf16_rate / fp32_rate, 3),
                "fp32_train_loss": round(fp32_loss, 4), "bf16_train_loss": round(bf16_loss, 4),
                # A change of the CPU default would need a clear gain at the same loss, not noise.
                "faster_at_same_loss": bf16_rate >= 1.1 * fp32_rate and abs(bf16_loss - fp32_loss) <= 0.05 * fp32_loss,
                "cpu_default": "float32; training.dtype=bfloat16 runs this recipe (services.trainer.devices)"}
        print(f"bf16 autocast: {bf16['bf16_tokens_per_s']} tok/s vs fp32 {bf16['fp32_tokens_per_s']}", flush=True)
    value, base = statistics.median(ours_values), statistics.median(base_values)
    load_after = load_average()
    result = {
        "name": "training",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "baseline": {"what": f"transformers.Trainer + peft LoRA, collator pads to max_seq_len={args.max_seq_len}, "
                             "same student, data, LoRA config, batch size and steps, same run",
                     "value": base, "unit": "tokens/s"},
        "value": value,
        "unit": "tokens/s",
        "ratio": round(value / base, 3),
        "goal": ">= 1.5x",
        "student": str(args.student.name),
        "steps": args.steps, "batch_size": args.batch_size, "examples": args.examples, "repeats": args.repeats,
        "all_values": ours_values, "all_baseline_values": base_values,
        "notes": "tokens = real (non-padding) prompt+answer tokens; median of the repeats",
        "code": code_version(),
        "load_average": {"before": load_before, "after": load_after},
        "contended": contended(load_before, load_after),
        "bf16_autocast": bf16,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
