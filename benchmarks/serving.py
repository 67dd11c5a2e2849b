"""Serving speed: ONNX Runtime (our hand decode loop) fp32 / int8 / 4-bit against PyTorch eager on
the same checkpoint, in the same run.

- decode tokens/s: greedy continuation of open-ended prompts (PyTorch: transformers ``generate``,
  greedy, fp32, KV cache; ONNX: ``OnnxGenerator`` with IO binding);
- one-token classification latency p50/p95 (labels whose first tokens differ, so one forward pass
  decides: PyTorch = one forward of the prompt + softmax over the label tokens);
- throughput (requests/s) of classification at 1, 8 and 32 concurrent clients through the model
  runtime, with the dynamic batcher against the same runtime with batches of one.

Writes benchmarks/results/serving.json (DESIGN.md "Benchmarks"). Headline: best ONNX decode tok/s
÷ PyTorch eager decode tok/s (goal ≥ 4×).

Run: python benchmarks/serving.py [--checkpoint DIR] [--threads N] [--seconds S]
(default checkpoint: the catalog's smollm2-135m-instruct; without the catalog a tiny fine-tuned
student is used and the result says so — its numbers say little about a real model)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import machine  # noqa: E402
from services.common.taskspec import TaskSpec  # noqa: E402
from services.serving.export import export_onnx  # noqa: E402
from services.serving.parity import TorchReference, check_parity  # noqa: E402
from services.serving.quantize import quantize  # noqa: E402
from services.serving.runtime import OnnxGenerator, OnnxModelRuntime  # noqa: E402

TEXT_SPEC = TaskSpec(name="chat", type="qa-closed-book", description="Answer the question helpfully.")
CLASS_SPEC = TaskSpec(name="news", type="classification", description="Classify the news headline by topic.",
                      labels=["sports", "business", "technology", "politics"])
PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how a bicycle works.",
           "What should I pack for a weekend in the mountains?", "Describe your favourite city."]
HEADLINES = ["Shares fell 3% after the earnings call", "The striker scored twice in the final",
             "New phone chip doubles battery life", "Parliament passes the budget after a long debate",
             "Central bank raises interest rates again", "Tennis star withdraws from the open",
             "Start-up releases an open-source database", "Minister resigns over the scandal"]


def resolve_checkpoint(arg: str | None, work: Path) -> tuple[Path, str]:
    if arg:
        return Path(arg), arg
    try:
        from services.common.catalog import resolve_model

        cache = Path(os.environ.get("DISTILLERY_MODEL_CACHE", ROOT / ".distillery" / "models"))
        return Path(resolve_model("smollm2-135m-instruct", cache)), "smollm2-135m-instruct"
    except Exception as exc:  # noqa: BLE001 — recorded in the result
        from services.serving.testing import cached_tiny_student

        print(f"catalog unavailable ({exc!r}); using the tiny fine-tuned student", file=sys.stderr)
        return cached_tiny_student(work / "tiny")[0], f"tiny fine-tuned student (catalog unavailable: {exc!r})"


def ensure_variants(checkpoint: Path, work: Path) -> dict[str, Path]:
    dirs = {"fp32": work / "onnx", "int8": work / "onnx-int8", "int4": work / "onnx-int4"}
    if not (dirs["fp32"] / "model.onnx").exists():
        export_onnx(checkpoint, dirs["fp32"])
    for kind in ("int8", "int4"):
        if not (dirs[kind] / "model.onnx").exists():
            quantize(kind, dirs["fp32"], dirs[kind])
    return dirs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def torch_decode(reference: TorchReference, tokenizer, tokens: int, repeats: int) -> float:
    import torch

    from services.common.student_format import render_prompt

    rates = []
    for _ in range(repeats):
        for prompt in PROMPTS:
            ids = torch.tensor([tokenizer.encode(render_prompt(tokenizer, TEXT_SPEC, prompt), add_special_tokens=False)])
            start = time.perf_counter()
            with torch.inference_mode():
                out = reference.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                               min_new_tokens=tokens, do_sample=False,
                                               pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
            rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - start))
    return statistics.median(rates)


def onnx_decode(generator: OnnxGenerator, tokens: int, repeats: int) -> float:
    generator.eos_ids = set()  # decode exactly ``tokens`` tokens, as min_new_tokens does for PyTorch
    rates = []
    for _ in range(repeats):
        for prompt in PROMPTS:
            start = time.perf_counter()
            prediction = generator.predict([prompt], max_tokens=tokens, constrained=False)[0]
            rates.append(prediction.completion_tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def torch_classify_ms(reference: TorchReference, generator: OnnxGenerator, repeats: int) -> list[float]:
    import numpy as np
    import torch

    first = [seq[0] for seq in generator.trie.sequences]
    times = []
    for _ in range(repeats):
        for text in HEADLINES:
            start = time.perf_counter()
            ids = generator.encode_prompt(text)
            with torch.inference_mode():
                logits = reference.model(torch.tensor([ids])).logits[0, -1].numpy()
            scores = logits[first] - logits[first].max()
            probs = np.exp(scores) / np.exp(scores).sum()
            _ = CLASS_SPEC.labels[int(probs.argmax())]
            times.append((time.perf_counter() - start) * 1000)
    return times


def onnx_classify_ms(generator: OnnxGenerator, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        for text in HEADLINES:
            start = time.perf_counter()
            generator.predict([text])
            times.append((time.perf_counter() - start) * 1000)
    return times


def throughput(model_dir: Path, clients: int, seconds: float, max_batch: int) -> float:
    runtime = OnnxModelRuntime("bench", "1", model_dir, CLASS_SPEC, max_batch=max_batch, max_wait_ms=5)
    runtime.load()
    runtime.predict([HEADLINES[0]])
    done = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            runtime.predict([HEADLINES[(i + n) % len(HEADLINES)]])
            n += 1
        with lock:
            done[0] += n

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    runtime.unload()
    return done[0] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--work", default=str(ROOT / ".distillery" / "bench" / "serving"))
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.json"))
    args = parser.parse_args()
    os.environ["DISTILLERY_SERVING_THREADS"] = str(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    checkpoint, model_name = resolve_checkpoint(args.checkpoint, work)
    print(f"model: {model_name} ({checkpoint})", file=sys.stderr)
    dirs = ensure_variants(checkpoint, work / model_name.split(" ")[0])

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    reference = TorchReference(checkpoint)
    decode, classify, parity = {}, {}, {}
    text_gens = {kind: OnnxGenerator(path, TEXT_SPEC) for kind, path in dirs.items()}
    class_gens = {kind: OnnxGenerator(path, CLASS_SPEC) for kind, path in dirs.items()}
    one_step = class_gens["fp32"].trie.one_step
    decode["pytorch_eager"] = torch_decode(reference, text_gens["fp32"].tokenizer, args.tokens, args.repeats)
    torch_ms = torch_classify_ms(reference, class_gens["fp32"], args.repeats)
    classify["pytorch_eager"] = {"p50": percentile(torch_ms, 0.5), "p95": percentile(torch_ms, 0.95)}
    for kind in dirs:
        parity[kind] = {
            "text_top1": check_parity(reference, text_gens[kind], TEXT_SPEC, [(p, "") for p in PROMPTS]).agreement,
            "labels": check_parity(reference, class_gens[kind], CLASS_SPEC, [(h, "") for h in HEADLINES]).agreement}
        decode[f"onnx_{kind}"] = onnx_decode(text_gens[kind], args.tokens, args.repeats)
        ms = onnx_classify_ms(class_gens[kind], args.repeats)
        classify[f"onnx_{kind}"] = {"p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95)}
        print(kind, decode[f"onnx_{kind}"], classify[f"onnx_{kind}"], parity[kind], file=sys.stderr)
    del reference
    best = max((k for k in dirs), key=lambda k: decode[f"onnx_{k}"])
    served = "int4" if parity["int4"]["labels"] >= 0.9 else "fp32"
    batched = {str(c): throughput(dirs[served], c, args.seconds, 8) for c in (1, 8, 32)}
    unbatched = {str(c): throughput(dirs[served], c, args.seconds, 1) for c in (1, 8, 32)}
    result = {
        "name": "serving",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": model_name,
        "baseline": {"what": "PyTorch eager decode (transformers generate, greedy, fp32, KV cache), same model, "
                             "same run", "value": round(decode["pytorch_eager"], 2), "unit": "tokens/s"},
        "value": round(decode[f"onnx_{best}"], 2),
        "unit": "tokens/s",
        "ratio": round(decode[f"onnx_{best}"] / decode["pytorch_eager"], 2),
        "value_variant": best,
        "goal": ">= 4x PyTorch eager",
        "decode_tokens_per_s": {k: round(v, 2) for k, v in decode.items()},
        "decode_ratio_vs_pytorch": {k: round(v / decode["pytorch_eager"], 2) for k, v in decode.items()},
        "classification_ms": {k: {q: round(v, 2) for q, v in d.items()} for k, d in classify.items()},
        "classification_one_forward_pass": one_step,
        "classification_p50_ratio_vs_pytorch": {k: round(classify["pytorch_eager"]["p50"] / d["p50"], 2)
                                                for k, d in classify.items()},
        "parity": parity,
        "throughput_requests_per_s": {"variant": served, "batched_max8": {k: round(v, 2) for k, v in batched.items()},
                                      "unbatched": {k: round(v, 2) for k, v in unbatched.items()},
                                      "batched_ratio": {k: round(batched[k] / unbatched[k], 2) for k in batched}},
        "settings": {"tokens": args.tokens, "repeats": args.repeats, "seconds_per_level": args.seconds,
                     "intra_op_threads": args.threads or "ort default", "prompts": len(PROMPTS),
                     "headlines": len(HEADLINES)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
