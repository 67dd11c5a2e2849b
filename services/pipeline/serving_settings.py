"""task.yaml's ``serving:`` section: what the pipeline asks the serving service to export and
which variant it deploys (services.common.settings: typed, an unknown key refused by path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common.enums import gguf_types, quantization
from services.common.errors import InvalidArgument
from services.common.settings import build_settings


@dataclass
class ServingSettings:
    # false: the job ends after evaluation, nothing is exported or deployed (e.g. a sweep of retunes
    # that only compares scores).
    deploy: bool = True
    # Quantized variants the export builds beside fp32: int8, int4 (each parity-checked).
    quantizations: list[str] = field(default_factory=lambda: ["int8"])
    # Agreement with the PyTorch student on the task's own inputs below which a variant is refused.
    min_parity: float = 0.9
    # The variant to deploy when its parity check passed (else the most compressed accepted one, else fp32).
    serve: str = "int8"
    # GGUF files in the download bundle for llama.cpp and Ollama (q8_0, q4_k_m, f16), with an Ollama
    # Modelfile; [] for none. One whose tool is missing is reported in the model card, not fatal.
    gguf: list[str] = field(default_factory=lambda: ["q8_0", "q4_k_m"])

    def validate(self) -> None:
        for name in (*self.quantizations, self.serve):
            quantization(name)  # InvalidArgument naming the unknown variant
        self.gguf = list(gguf_types(self.gguf))
        if not 0.0 <= self.min_parity <= 1.0:
            raise InvalidArgument(f"serving.min_parity must be between 0 and 1, got {self.min_parity}")

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> ServingSettings:
        return build_settings(cls, section, where="serving")
