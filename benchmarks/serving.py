"""Serving speed on this CPU: our ONNX Runtime decode loop (fp32 / int8 / 4-bit), PyTorch eager,
onnxruntime-genai (its model builder's fp32 and int4 graphs, its own C++ loop; benchmarks/_genai.py)
and llama.cpp (llama-cpp-python, GGUF Q8_0 and Q4_K_M made by llama.cpp's own converter and
quantizer) on the same checkpoint and the same rendered prompts, in one run.

- decode tokens/s: greedy continuation of exactly ``--tokens`` tokens (prefill included);
- one-token classification latency p50/p95 (labels whose first tokens differ, so one forward pass
  decides; llama.cpp: one eval of the prompt);
- parity of each ONNX variant against PyTorch (top-1 tokens on open prompts, labels on headlines);
- throughput (requests/s) of classification at 1, 8 and 32 concurrent clients through the model
  runtime of the variant the product serves, with the dynamic batcher and with batches of one.

Every figure is the median of ``--repeats`` (≥ 5) paired repeats: each repeat runs every runtime
once, in a rotated order, so drift in the machine's load hits all of them alike. The load average
is recorded at the start and the end; a start above the core count is refused unless
``--allow-contended`` (then the result says ``contended: true``).

Writes benchmarks/results/serving.json (DESIGN.md "Benchmarks"). Headline: the served variant's
decode tok/s (int8 when it passes the parity gate, else fp32, as the export decides) ÷ PyTorch
eager; also ÷ llama.cpp Q4_K_M (goal ≥ 1.0).

Run: python benchmarks/serving.py [--checkpoint DIR] [--threads N] [--repeats 5]
(default checkpoint: the catalog's smollm2-135m-instruct). llama.cpp needs .venvs/llamacpp
(scripts/build-llama-cpp.sh env, ~8 min); without it those rows are absent and the result says why."""

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

from benchmarks import _genai  # noqa: E402
from benchmarks._common import code_version, contended, load_average, machine  # noqa: E402
from services.common.taskspec import TaskSpec  # noqa: E402
from services.serving.export import export_onnx  # noqa: E402
from services.serving.gguf import GgufTools, export_gguf  # noqa: E402
from services.serving.parity import TEXT_TOKENS, TorchReference, check_parity  # noqa: E402
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


MIN_PARITY = 0.9  # serving.min_parity's default: below it the export refuses a variant


def _llama_version(python: Path) -> str:
    import subprocess

    done = subprocess.run([str(python), "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True,
                          text=True, timeout=60)
    return done.stdout.strip() or "?"


def rendered(tokenizer, spec: TaskSpec, text: str) -> str:
    from services.common.student_format import render_prompt

    return render_prompt(tokenizer, spec, text)


def torch_decode(reference: TorchReference, tokenizer, tokens: int) -> float:
    """One repeat: the median tokens/s over the prompts."""
    import torch

    rates = []
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer.encode(rendered(tokenizer, TEXT_SPEC, prompt), add_special_tokens=False)])
        start = time.perf_counter()
        with torch.inference_mode():
            out = reference.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                           min_new_tokens=tokens, do_sample=False,
                                           pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        rates.append((out.shape[1] - ids.shape[1]) / (time.perf_counter() - start))
    return statistics.median(rates)


def onnx_decode(generator: OnnxGenerator, tokens: int) -> float:
    generator.eos_ids = set()  # decode exactly ``tokens`` tokens, as min_new_tokens does for PyTorch
    rates = []
    for prompt in PROMPTS:
        start = time.perf_counter()
        prediction = generator.predict([prompt], max_tokens=tokens, constrained=False)[0]
        rates.append(prediction.completion_tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def torch_classify_ms(reference: TorchReference, generator: OnnxGenerator) -> list[float]:
    """One forward pass of the prompt and a softmax over the labels' first tokens, per headline."""
    import numpy as np
    import torch

    first = [seq[0] for seq in generator.trie.sequences]
    times = []
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


def onnx_classify_ms(generator: OnnxGenerator) -> list[float]:
    times = []
    for text in HEADLINES:
        start = time.perf_counter()
        generator.predict([text])
        times.append((time.perf_counter() - start) * 1000)
    return times


def genai_parity(reference: TorchReference, model: _genai.GenaiModel, prompt_ids: list[list[int]],
                 classifier: OnnxGenerator, first_tokens: list[int], eos: set[int]) -> dict[str, float]:
    """The same two agreements as our variants' (check_parity): top-1 tokens along PyTorch's greedy
    continuation of the open prompts, and labels on the headlines (one forward pass each side)."""
    agree = total = 0
    for ids in prompt_ids:
        continuation = reference.greedy(ids, TEXT_TOKENS, eos)
        full = ids + continuation
        top = reference.logits(full)[len(ids) - 1:len(full) - 1].argmax(-1)
        same, positions = model.top1_agreement(ids, continuation, top)
        agree, total = agree + same, total + positions
    labels = 0
    for text in HEADLINES:
        ids = classifier.encode_prompt(text)
        torch_choice = int(reference.logits(ids)[-1][first_tokens].argmax())
        labels += int(model.first_token_label(ids, first_tokens)[0] == torch_choice)
    return {"text_top1": agree / max(1, total), "labels": labels / len(HEADLINES)}


def _genai_version() -> str:
    import onnxruntime_genai

    return getattr(onnxruntime_genai, "__version__", "?")


class LlamaCpp:
    """A llama.cpp worker process (benchmarks/_llama_cpp_worker.py) with one GGUF loaded."""

    def __init__(self, python: Path, gguf: Path, threads: int) -> None:
        import subprocess

        self.process = subprocess.Popen([str(python), str(ROOT / "benchmarks" / "_llama_cpp_worker.py"), str(gguf),
                                         str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self._read()
        if not ready.get("ready"):
            raise RuntimeError(f"llama.cpp worker did not start: {ready}")

    def _read(self) -> dict:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"llama.cpp worker exited with {self.process.wait()}")
        return json.loads(line)

    def _ask(self, **command) -> dict:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def decode(self, tokenizer, tokens: int) -> float:
        rates = []
        for prompt in PROMPTS:
            answer = self._ask(op="decode", prompt=rendered(tokenizer, TEXT_SPEC, prompt), tokens=tokens)
            rates.append(answer["tokens"] / answer["seconds"])
        return statistics.median(rates)

    def classify_ms(self, tokenizer) -> list[float]:
        return [self._ask(op="prefill", prompt=rendered(tokenizer, CLASS_SPEC, text))["seconds"] * 1000
                for text in HEADLINES]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--allow-contended", action="store_true",
                        help="run although the load average is above the core count (the result says so)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: one per core)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.json"))
    args = parser.parse_args()
    load_start = load_average()
    if load_start[0] > (os.cpu_count() or 1) and not args.allow_contended:
        parser.error(f"load average {load_start[0]} is above the {os.cpu_count()} cores: the figures would measure "
                     "the contention; wait for a quiet machine or pass --allow-contended")
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
    text_gens = {kind: OnnxGenerator(path, TEXT_SPEC) for kind, path in dirs.items()}
    class_gens = {kind: OnnxGenerator(path, CLASS_SPEC) for kind, path in dirs.items()}
    tokenizer = text_gens["fp32"].tokenizer
    one_step = class_gens["fp32"].trie.one_step
    parity = {kind: {
        "text_top1": check_parity(reference, text_gens[kind], TEXT_SPEC, [(p, "") for p in PROMPTS]).agreement,
        "labels": check_parity(reference, class_gens[kind], CLASS_SPEC, [(h, "") for h in HEADLINES]).agreement}
        for kind in dirs}
    threads = args.threads or os.cpu_count() or 1
    llama: dict[str, LlamaCpp] = {}
    llama_note = ""
    tools = GgufTools.from_env()
    if tools.missing_quantizer():
        llama_note = tools.missing_quantizer()
    else:
        for made in export_gguf(checkpoint, work / model_name.split(" ")[0] / "gguf", ["q8_0", "q4_k_m"], tools):
            if made.path is None:
                llama_note += f"{made.quantization}: {made.error}; "
            else:
                llama[f"llama_cpp_{made.quantization}"] = LlamaCpp(tools.runtime, made.path, threads)
    genai: dict[str, _genai.GenaiModel] = {}
    genai_note = _genai.available()
    if not genai_note:
        for kind in _genai.VARIANTS:
            folder = _genai.build(checkpoint, work / model_name.split(" ")[0] / f"genai-{kind}", kind, threads)
            genai[f"onnxruntime_genai_{kind}"] = _genai.GenaiModel(folder)
    prompt_ids = [tokenizer.encode(rendered(tokenizer, TEXT_SPEC, p), add_special_tokens=False) for p in PROMPTS]
    first_tokens = [seq[0] for seq in class_gens["fp32"].trie.sequences]
    for name, model in genai.items():
        parity[name.removeprefix("onnxruntime_")] = genai_parity(reference, model, prompt_ids, class_gens["fp32"],
                                                                 first_tokens, text_gens["fp32"].eos_ids)
    decoders = {"pytorch_eager": lambda r=reference: torch_decode(r, tokenizer, args.tokens),
                **{f"onnx_{kind}": (lambda g=gen: onnx_decode(g, args.tokens)) for kind, gen in text_gens.items()},
                **{name: (lambda w=worker: w.decode(tokenizer, args.tokens)) for name, worker in llama.items()},
                **{name: (lambda m=model: m.decode(prompt_ids, args.tokens)) for name, model in genai.items()}}
    classifiers = {"pytorch_eager": lambda r=reference: torch_classify_ms(r, class_gens["fp32"]),
                   **{f"onnx_{kind}": (lambda g=gen: onnx_classify_ms(g)) for kind, gen in class_gens.items()},
                   **{name: (lambda w=worker: w.classify_ms(tokenizer)) for name, worker in llama.items()},
                   **{name: (lambda m=model: [m.first_token_label(class_gens["fp32"].encode_prompt(h), first_tokens)[1]
                                               for h in HEADLINES]) for name, model in genai.items()}}
    for fn in (*decoders.values(), *classifiers.values()):  # warm-up: first calls allocate and compile
        fn()
    names = list(decoders)
    rates: dict[str, list[float]] = {name: [] for name in names}
    latencies: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(args.repeats):  # paired: every runtime once per repeat, the order rotated
        order = names[repeat % len(names):] + names[:repeat % len(names)]
        for name in order:
            rates[name].append(decoders[name]())
            latencies[name] += classifiers[name]()
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(f"{n} {rates[n][-1]:.1f}" for n in names),
              file=sys.stderr)
    for worker in llama.values():
        worker.close()
    decode = {name: statistics.median(values) for name, values in rates.items()}
    classify = {name: {"p50": percentile(ms, 0.5), "p95": percentile(ms, 0.95)} for name, ms in latencies.items()}
    decoders.clear(), classifiers.clear()  # they hold the PyTorch model
    del reference
    # What the export deploys with the default settings: int8 when it passes the parity gate.
    served = "int8" if parity["int8"]["labels"] >= MIN_PARITY and parity["int8"]["text_top1"] >= MIN_PARITY else "fp32"
    batched = {str(c): throughput(dirs[served], c, args.seconds, 8) for c in (1, 8, 32)}
    unbatched = {str(c): throughput(dirs[served], c, args.seconds, 1) for c in (1, 8, 32)}
    load_end = load_average()
    q4 = decode.get("llama_cpp_q4_k_m")
    result = {
        "name": "serving",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "code": code_version(),
        "load_average": {"start": load_start, "end": load_end},
        "contended": contended(load_start, load_end),
        "model": model_name,
        "baseline": {"what": "PyTorch eager decode (transformers generate, greedy, fp32, KV cache), same model, "
                             "same prompts, same run", "value": round(decode["pytorch_eager"], 2), "unit": "tokens/s"},
        "value": round(decode[f"onnx_{served}"], 2),
        "unit": "tokens/s",
        "ratio": round(decode[f"onnx_{served}"] / decode["pytorch_eager"], 2),
        "value_variant": f"onnx_{served} (the variant the export serves: int8 when it passes parity {MIN_PARITY})",
        "ratio_vs_llama_cpp_q4_k_m": round(decode[f"onnx_{served}"] / q4, 2) if q4 else None,
        "goal": ">= 1.0x llama.cpp Q4_K_M decode on the same threads; classification p50 <= 30 ms",
        "llama_cpp": llama_note.strip() or "llama-cpp-python " + _llama_version(tools.runtime),
        "onnxruntime_genai": genai_note or "onnxruntime-genai " + _genai_version() + " (model builder: fp32; int4 "
                             + " ".join(_genai.VARIANTS["int4"][1]) + ")",
        "decode_tokens_per_s": {k: round(v, 2) for k, v in decode.items()},
        "decode_tokens_per_s_repeats": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "decode_ratio_vs_pytorch": {k: round(v / decode["pytorch_eager"], 2) for k, v in decode.items()},
        "classification_ms": {k: {q: round(v, 2) for q, v in d.items()} for k, d in classify.items()},
        "classification_one_forward_pass": one_step,
        "classification_p50_ratio_vs_pytorch": {k: round(classify["pytorch_eager"]["p50"] / d["p50"], 2)
                                                for k, d in classify.items()},
        "parity": parity,
        "throughput_requests_per_s": {"variant": served, "batched_max8": {k: round(v, 2) for k, v in batched.items()},
                                      "unbatched": {k: round(v, 2) for k, v in unbatched.items()},
                                      "batched_ratio": {k: round(batched[k] / unbatched[k], 2) for k in batched},
                                      "32_vs_1_clients": round(batched["32"] / batched["1"], 2)},
        "settings": {"tokens": args.tokens, "repeats": args.repeats, "seconds_per_level": args.seconds,
                     "threads": threads, "prompts": len(PROMPTS), "headlines": len(HEADLINES)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
