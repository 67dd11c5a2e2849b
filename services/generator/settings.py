"""Generation settings: the request's fields win, then task.yaml's ``generation:`` section, then
the defaults below (distil labs' defaults where they apply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument
from services.common.settings import build_settings
from services.common.taskspec import TaskSpec

DEFAULT_TARGET = 100
MAX_TARGET = 1_000_000
# Where a classification row's label comes from (``label_source``); see services/generator/label_source.py.
LABEL_SOURCES = ("auto", "teacher", "target", "agreement")


# Other names task.yaml may use for a setting (the pipeline's own names, earlier spellings).
ALIASES = {"target_count": "target", "num_examples": "target", "seed": "random_seed",
           "price_per_1m_prompt_tokens": "price_prompt_per_1m",
           "price_per_1m_completion_tokens": "price_completion_per_1m", "structured_mode": "structured_outputs"}
# Settings of StartGenerationRequest's own fields (0 / unset: task.yaml's value stands).
REQUEST_FIELDS = ("target_count", "temperature", "top_p", "random_seed")


@dataclass
class GenerationSettings:
    """task.yaml's ``generation:`` section (also named by ``--set generation.KEY=VALUE``). The
    teacher connection's settings live here too: the generator is the only service that talks to
    the teacher."""

    # Rows to generate (task.yaml: target_count).
    target: int = DEFAULT_TARGET
    # Sampling temperature of the generated inputs (diversity; the labels are greedy, see label_temperature).
    temperature: float = 0.8
    # Nucleus sampling of the generated inputs.
    top_p: float = 0.95
    # Seed of shot selection and sampling: the same seed and settings generate the same rows.
    random_seed: int = 0
    # Generation operations the pipeline splits the rows into, one per teacher replica: replicas
    # sharing a PostgreSQL operations store each claim one and write in parallel, and the pipeline
    # merges them in index order. 1: one operation (the generator itself ignores this key).
    shards: int = 1
    # Rows the teacher works on per batch; the JSONL is flushed after each batch.
    batch_size: int = 16
    # Seeds shown as examples when the teacher writes a new input.
    input_shots: int = 6
    # Seeds shown as examples when the teacher labels (answers) an input.
    label_shots: int = 8
    # 0: fit to the seeds — the type's default (inputs 96; answers 16 for a label, 256 for JSON,
    # 96 for text), raised to 1.5× the longest seed (services.common.budget).
    input_max_tokens: int = 0
    # Longest answer the teacher may write (0: fit to the seeds, as input_max_tokens).
    label_max_tokens: int = 0
    # The teacher labels greedily by default: the label should be its best answer, not a sample.
    label_temperature: float = 0.0
    # Classification: divide the teacher's label probabilities by its content-free prior (contextual
    # calibration). Off by default: on gemma3-270m it helped with one shot order and hurt with another.
    calibrate_labels: bool = False
    # Classification: what a row's output is. "teacher": the teacher's label. "target": the label
    # the row was generated for (the teacher still answers; its distribution is kept as evidence).
    # "agreement": only rows whose teacher label equals their target. "auto": "teacher" when the
    # teacher labels the seeds leave-one-out at least ``teacher_trust_accuracy`` right, else "target".
    # Other task types have no target label: always "teacher".
    label_source: str = "auto"
    # The leave-one-out seed accuracy from which "auto" trusts the teacher's labels. Measured here
    # (DESIGN.md, "Quality facts"): a student trained on 30 seeds alone scored 0.79 and 0.91 on two
    # 10-way intent tasks, while the bundled 270M teacher scored 0.54 with 8 shots (0.68 with 30)
    # and 0.68-0.75 few-shot on other 10-way tasks. Labels worse than the seed-only student's own
    # answers teach the student less than the seeds already do; below about 0.8 the generation
    # target (which the generated inputs fitted well) is the better label.
    teacher_trust_accuracy: float = 0.8
    # USD per 1M prompt tokens (0 for a local teacher): the report's cost of generation.
    price_prompt_per_1m: float = 0.0
    # USD per 1M completion tokens.
    price_completion_per_1m: float = 0.0
    # One price for prompt and completion tokens alike (sets both of the above).
    price_per_1m_tokens: float | None = None
    # --- the teacher's connection (services/generator/teachers.py)
    # "" or "auto": vllm for a local model, openai for an openai:… reference; "vllm" or "openai".
    backend: str = ""
    # vLLM: the context length to allocate (0: the model's own).
    max_model_len: int = 0
    # The base URL of an OpenAI-compatible teacher given as plain "openai" (…/v1).
    base_url: str = ""
    # The model name an OpenAI-compatible endpoint serves (with base_url).
    model: str = ""
    # The environment variable that holds the API key.
    api_key_env: str = "OPENAI_API_KEY"
    # "structured_outputs" (vLLM servers) or "response_format" (OpenAI-style hosted APIs).
    structured_outputs: str = "structured_outputs"
    # Requests in flight to the endpoint at once.
    concurrency: int = 8
    # Retries of a failed request (exponential backoff).
    max_retries: int = 5
    # Seconds one request may take.
    timeout: float = 120.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_prompt_per_1m + completion_tokens * self.price_completion_per_1m) / 1e6

    @classmethod
    def from_section(cls, section: dict[str, Any] | None) -> GenerationSettings:
        """task.yaml's section alone (services.common.settings: typed, unknown keys refused)."""
        return cls._build(_canonical(section or {}))

    @classmethod
    def resolve(cls, request: dict[str, Any], spec: TaskSpec) -> GenerationSettings:
        """The request's own fields (where set) over task.yaml's section over the defaults."""
        given = {k: v for k, v in request.items() if k in REQUEST_FIELDS and v not in (None, 0, "0", "")}
        return cls._build({**_canonical(spec.section("generation")), **_canonical(given)})

    @classmethod
    def _build(cls, values: dict[str, Any]) -> GenerationSettings:
        settings = build_settings(cls, values, where="generation")
        if settings.price_per_1m_tokens is not None:
            settings.price_prompt_per_1m = settings.price_completion_per_1m = settings.price_per_1m_tokens
        return settings

    def validate(self) -> None:
        self.label_source = self.label_source.strip().lower()
        self.backend = self.backend.strip().lower()
        self.check()

    def check(self) -> None:
        if not 1 <= self.target <= MAX_TARGET:
            raise InvalidArgument(f"target_count must be between 1 and {MAX_TARGET}, got {self.target}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidArgument(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidArgument(f"top_p must be in (0, 1], got {self.top_p}")
        if self.batch_size < 1:
            raise InvalidArgument(f"generation.batch_size must be at least 1, got {self.batch_size}")
        if not 1 <= self.shards <= 64:
            raise InvalidArgument(f"generation.shards must be between 1 and 64, got {self.shards}")
        if self.label_source not in LABEL_SOURCES:
            raise InvalidArgument(f"generation.label_source must be one of {', '.join(LABEL_SOURCES)}, "
                                  f"got {self.label_source!r}")
        if self.backend not in ("", "auto", "vllm", "openai"):
            raise InvalidArgument(f"generation.backend {self.backend!r} is not a backend; choose vllm or openai")
        if self.structured_outputs not in ("structured_outputs", "response_format"):
            raise InvalidArgument("generation.structured_outputs must be structured_outputs or response_format, "
                                  f"got {self.structured_outputs!r}")
        if not 0.0 <= self.teacher_trust_accuracy <= 1.0:
            raise InvalidArgument("generation.teacher_trust_accuracy must be in [0, 1], "
                                  f"got {self.teacher_trust_accuracy}")


def _canonical(section: dict[str, Any]) -> dict[str, Any]:
    """The section with every alias replaced by the field it names (two names of one field: an error)."""
    renamed: dict[str, Any] = {}
    for key, value in section.items():
        name = ALIASES.get(key, key)
        if name in renamed:
            raise InvalidArgument(f"generation.{key}: another name of generation.{name} is set too; keep one")
        renamed[name] = value
    return renamed
