"""llama.cpp side of benchmarks/serving.py, run with the interpreter that has llama-cpp-python
(.venvs/llamacpp, built by scripts/build-llama-cpp.sh env): loads one GGUF once, then answers one
JSON command per stdin line with one JSON line on stdout, so the benchmark can alternate it with
the other runtimes repeat by repeat (paired) without paying the load each time.

    {"op": "decode", "prompt": "<rendered chat prompt>", "tokens": 32}  -> {"tokens": 32, "seconds": 0.41}
    {"op": "prefill", "prompt": "..."}                                   -> {"seconds": 0.02}

Greedy decoding (top-1) of exactly ``tokens`` tokens (end-of-generation tokens do not stop it, as
min_new_tokens does for PyTorch); the time includes the prompt's prefill, as for the others.

    python benchmarks/_llama_cpp_worker.py MODEL.gguf THREADS
"""

from __future__ import annotations

import json
import sys
import time


def main() -> int:
    from llama_cpp import Llama

    model_path, threads = sys.argv[1], int(sys.argv[2])
    llm = Llama(model_path=model_path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        tokens = llm.tokenize(command["prompt"].encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        if command["op"] == "prefill":
            start = time.perf_counter()
            llm.eval(tokens)
            print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)
            continue
        wanted, produced = int(command["tokens"]), 0
        start = time.perf_counter()
        for _token in llm.generate(tokens, top_k=1, top_p=1.0, temp=0.0, reset=True):
            produced += 1
            if produced >= wanted:
                break
        print(json.dumps({"tokens": produced, "seconds": time.perf_counter() - start}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
