"""Training throughput: answer-and-prompt tokens per second of the trainer's loop (length-grouped
batches, logits only at answer positions) against a plain Hugging Face ``Trainer`` whose collator
pads every example to max length, with the same student, LoRA config, data, batch size, learning
rate and number of steps, in the same run. Tokens are real (non-padding) tokens in both.

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

from benchmarks._common import machine  # noqa: E402


def rows(count: int) -> list[dict]:
    from tests.helpers.trainer_data import train_rows

    base = train_rows()
    return [base[i % len(base)] for i in range(count)]


def ours(student: Path, data: list[dict], args: argparse.Namespace, work: Path) -> float:
    from services.common.taskspec import Example
    from services.trainer.config import TrainingConfig
    from services.trainer.devices import setup_runtime
    from services.trainer.loop import train
    from tests.helpers.trainer_data import SPEC

    config = TrainingConfig(max_steps=args.steps, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
                            lora_r=16, lora_alpha=32, eval_fraction=0.0, checkpoint_every_steps=0, seed=0)
    outcome = train(student, SPEC, [Example.from_dict(r) for r in data], config, work, setup_runtime())
    return outcome.metrics["tokens_trained"] / outcome.seconds


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
    parser.add_argument("--repeats", type=int, default=3)
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
    ours_values, base_values = [], []
    for repeat in range(args.repeats):  # interleaved, so load changes on a shared machine hit both
        with tempfile.TemporaryDirectory() as tmp:
            base_values.append(round(baseline(args.student, data, args, Path(tmp) / "hf"), 2))
            ours_values.append(round(ours(args.student, data, args, Path(tmp) / "ours"), 2))
        print(f"repeat {repeat + 1}: ours {ours_values[-1]} tok/s, HF Trainer padded {base_values[-1]} tok/s",
              flush=True)
    value, base = statistics.median(ours_values), statistics.median(base_values)
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
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
