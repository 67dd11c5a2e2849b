"""The ``ModelRuntime`` interface the repository serves (the MLServer pattern: servicer →
repository → runtime) and its ONNX implementation: an ``OnnxGenerator`` (services.common.decoding,
the decode loop the evaluator scores with too) behind a dynamic batcher."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from services.common.decoding import (  # noqa: F401  (re-exported: serving's public runtime API)
    DEFAULT_MAX_TOKENS,
    MAX_BATCH_INPUTS,
    MAX_INPUT_TOKENS,
    MAX_TOKENS_LIMIT,
    LabelTrie,
    OnnxGenerator,
    Prediction,
    batch_contexts,
    eos_token_ids,
    intra_op_threads,
    json_complete,
    label_sequences,
)
from services.common.errors import FailedPrecondition, InvalidArgument
from services.common.taskspec import TaskSpec


class ModelRuntime(ABC):
    """What the repository serves: load once, predict many times (MLServer's MLModel)."""

    name: str = ""
    version: str = ""
    spec: TaskSpec

    @abstractmethod
    def load(self) -> None: ...

    @abstractmethod
    def predict(self, inputs: Sequence[str], contexts: Sequence[str] | None = None,
                max_tokens: int | None = None, constrained: bool = True) -> list[Prediction]: ...

    @abstractmethod
    def stream(self, text: str, context: str = "", max_tokens: int | None = None) -> Iterator[str]:
        """Text deltas of one answer, as they are decoded."""

    def unload(self) -> None:
        pass

    @property
    def ready(self) -> bool:
        return True


class OnnxModelRuntime(ModelRuntime):
    """A repository entry: an ``OnnxGenerator`` behind a dynamic batcher."""

    def __init__(self, name: str, version: str, model_dir: Path, spec: TaskSpec, quantization: str = "none",
                 max_batch: int = 8, max_wait_ms: float = 5.0, uri: str = "", max_queue: int = 256) -> None:
        self.name, self.version, self.model_dir, self.spec = name, version, Path(model_dir), spec
        self.quantization = quantization
        self.uri = uri or self.model_dir.as_uri()
        self.max_batch, self.max_wait_ms, self.max_queue = max_batch, max_wait_ms, max_queue
        self.generator: OnnxGenerator | None = None
        self.batcher: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        from services.serving.batching import DynamicBatcher

        with self._lock:
            if self.generator is None:
                self.generator = OnnxGenerator.from_dir(self.model_dir, self.spec)
                self.batcher = DynamicBatcher(self._run_batch, max_batch=self.max_batch,
                                              max_wait_ms=self.max_wait_ms, name=f"{self.name}:{self.version}",
                                              max_queue=self.max_queue)

    def _run_batch(self, items: list[tuple[str, str, int, bool]]) -> list[Prediction]:
        assert self.generator is not None
        constrained = items[0][3]
        return self.generator.predict([i[0] for i in items], [i[1] for i in items], [i[2] for i in items],
                                      constrained=constrained)

    @property
    def ready(self) -> bool:
        return self.generator is not None

    def predict(self, inputs: Sequence[str], contexts: Sequence[str] | None = None,
                max_tokens: int | None = None, constrained: bool = True) -> list[Prediction]:
        generator, batcher = self.generator, self.batcher  # an unload may clear them meanwhile
        if generator is None or batcher is None:
            raise FailedPrecondition(f"model {self.name} version {self.version} is not loaded")
        if not inputs:
            raise InvalidArgument("no inputs: send at least one input text")
        contexts = batch_contexts(inputs, contexts)
        limit = generator._check_max_tokens(max_tokens)
        # Validate each input here, so that one bad input fails its own request, not a whole batch.
        for text, ctx in zip(inputs, contexts):
            generator.encode_prompt(text, ctx)
        futures = [batcher.submit((text, ctx, limit, constrained)) for text, ctx in zip(inputs, contexts)]
        return [f.result() for f in futures]

    def stream(self, text: str, context: str = "", max_tokens: int | None = None) -> Iterator[str]:
        if self.generator is None:
            raise FailedPrecondition(f"model {self.name} version {self.version} is not loaded")
        return self.generator.stream(text, context, max_tokens)

    def unload(self) -> None:
        with self._lock:
            if self.batcher is not None:
                self.batcher.close()
            self.generator, self.batcher = None, None
