"""Generation throughput: examples/s of the generator's vLLM backend (continuous batching,
structured outputs) against a sequential transformers ``generate()`` loop, same model, same
prompts, same run.

An example is what the generator makes per row: the teacher writes a new input from a few-shot
prompt, then answers it from the labelling prompt. Both engines get exactly the same prompts
(input prompts from the generation method; label prompts built on the inputs the vLLM run
wrote), the same token limits and greedy decoding. vLLM decodes the label under the task's
choice constraint; the baseline decodes it freely, with the same max_new_tokens.

Runs in the generator's environment (vLLM + transformers 5.x); started from the core
environment (``make bench-generation``) it re-executes itself there.

Writes benchmarks/results/generation.json. Run: python benchmarks/generation.py [--examples N]."""

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


def vllm_python() -> Path:
    return Path(os.environ.get("DISTILLERY_VLLM_PYTHON") or ROOT / ".venvs" / "vllm" / "bin" / "python")


def build_prompts(count: int):
    from services.common.taskspec import load_task
    from services.generator.labeling import fixed_label_shots
    from services.generator.method import plan_row

    bundle = load_task(ROOT / "tests" / "data" / "generator_tasks" / "intent")
    shots = fixed_label_shots(bundle.spec, bundle.seeds, 0)
    plans = [plan_row(bundle.spec, bundle.seeds, [], i, 0, 6, shots) for i in range(count)]
    return bundle.spec, plans


def run_vllm(backend, spec, plans, input_tokens: int, label_tokens: int):
    from services.generator.backend import CompletionRequest
    from services.generator.method import clean_input, label_prompt
    from services.generator.prompting import label_constraint

    started = time.perf_counter()
    inputs = backend.complete(CompletionRequest(prompts=[p.input_prompt for p in plans], max_tokens=input_tokens,
                                                temperature=0.0, stop=["\n"]))
    texts = [clean_input(c.text) or "hello" for c in inputs]
    label_prompts = [label_prompt(spec, p, t) for p, t in zip(plans, texts)]
    labels = backend.complete(CompletionRequest(prompts=label_prompts, constraint=label_constraint(spec),
                                                max_tokens=label_tokens, temperature=0.0))
    seconds = time.perf_counter() - started
    tokens = sum(c.completion_tokens for c in inputs + labels)
    return seconds, tokens, label_prompts, [c.text for c in labels]


def run_transformers(model, tokenizer, plans, label_prompts, input_tokens: int, label_tokens: int):
    import torch

    started = time.perf_counter()
    tokens = 0
    with torch.inference_mode():
        for plan, label in zip(plans, label_prompts):
            for prompt, limit, stop in ((plan.input_prompt, input_tokens, ["\n"]), (label, label_tokens, None)):
                ids = tokenizer(prompt, return_tensors="pt")
                out = model.generate(**ids, max_new_tokens=limit, do_sample=False, stop_strings=stop,
                                     tokenizer=tokenizer, pad_token_id=tokenizer.pad_token_id)
                tokens += int(out.shape[1] - ids["input_ids"].shape[1])
    return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-repeats", type=int, default=1)
    parser.add_argument("--model", default=os.environ.get("DISTILLERY_TEACHER", "gemma3-270m"))
    parser.add_argument("--input-tokens", type=int, default=40)
    parser.add_argument("--label-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "generation.json")
    args = parser.parse_args()

    try:
        import vllm  # noqa: F401
    except ImportError:
        python = vllm_python()
        if not python.exists():
            sys.exit(f"vLLM is not importable here and {python} does not exist: run `make setup` "
                     "or set DISTILLERY_VLLM_PYTHON")
        os.execv(str(python), [str(python), __file__, *sys.argv[1:]])

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from services.generator.teachers import resolve_local_model
    from services.generator.vllm_backend import VllmBackend

    home = Path(os.environ.get("DISTILLERY_HOME") or tempfile.mkdtemp(prefix="distillery-bench-"))
    cache = Path(os.environ.get("DISTILLERY_MODEL_CACHE") or home / "models")
    path = resolve_local_model(args.model, cache)
    spec, plans = build_prompts(args.examples)

    backend = VllmBackend(path, args.model, home, max_model_len=2048)
    backend.warm_up()
    run_vllm(backend, spec, plans[:2], args.input_tokens, args.label_tokens)  # warm-up
    vllm_runs = [run_vllm(backend, spec, plans, args.input_tokens, args.label_tokens) for _ in range(args.repeats)]
    label_prompts = vllm_runs[0][2]
    engine_start = backend.start_seconds
    backend.close()
    del backend

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    run_transformers(model, tokenizer, plans[:1], label_prompts[:1], args.input_tokens, args.label_tokens)  # warm-up
    hf_runs = [run_transformers(model, tokenizer, plans, label_prompts, args.input_tokens, args.label_tokens)
               for _ in range(args.baseline_repeats)]

    vllm_eps = [args.examples / seconds for seconds, *_ in vllm_runs]
    hf_eps = [args.examples / seconds for seconds, _ in hf_runs]
    value, baseline = statistics.median(vllm_eps), statistics.median(hf_eps)
    result = {
        "name": "generation",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "baseline": {"what": "sequential transformers generate() loop (greedy, fp32, one prompt at a time), same "
                             "model, same prompts, same run", "value": round(baseline, 3), "unit": "examples/s"},
        "value": round(value, 3),
        "unit": "examples/s",
        "ratio": round(value / baseline, 2),
        "goal": ">= 5x the sequential transformers loop",
        "model": args.model,
        "examples": args.examples,
        "repeats": args.repeats,
        "all_values": [round(v, 3) for v in vllm_eps],
        "all_baseline_values": [round(v, 3) for v in hf_eps],
        "completion_tokens_per_second": {
            "vllm": round(statistics.median(tokens / seconds for seconds, tokens, *_ in vllm_runs), 1),
            "transformers": round(statistics.median(tokens / seconds for seconds, tokens in hf_runs), 1),
        },
        "vllm_engine_start_seconds": round(engine_start, 1),
        "notes": "an example = one input-generation call + one labelling call; vLLM decodes labels under the "
                 "choice constraint, batches all examples and reuses the shared labelling prefix (prefix cache); "
                 "the baseline prefills every prompt from scratch, which dominates its time on CPU. Shared "
                 "machine: ratios within one run are what to compare.",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":  # vLLM's CPU engine starts worker processes that re-import this module
    main()
