"""Generation settings: the request's fields win, then task.yaml's ``generation:`` section, then
the defaults below (distil labs' defaults where they apply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument
from services.common.taskspec import TaskSpec

DEFAULT_TARGET = 100
MAX_TARGET = 1_000_000
# Where a classification row's label comes from (``label_source``); see services/generator/label_source.py.
LABEL_SOURCES = ("auto", "teacher", "target", "agreement")


def _number(value: Any, name: str, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise InvalidArgument(f"generation.{name}: {value!r} is not a number") from None


@dataclass
class GenerationSettings:
    target: int = DEFAULT_TARGET
    temperature: float = 0.8
    top_p: float = 0.95
    random_seed: int = 0
    # Rows the teacher works on per batch; the JSONL is flushed after each batch.
    batch_size: int = 16
    input_shots: int = 6
    label_shots: int = 8
    # 0: fit to the seeds — the type's default (inputs 96; answers 16 for a label, 256 for JSON,
    # 96 for text), raised to 1.5× the longest seed (services.common.budget).
    input_max_tokens: int = 0
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
    # Prices in USD per 1M tokens (0 for a local teacher).
    price_prompt_per_1m: float = 0.0
    price_completion_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_prompt_per_1m + completion_tokens * self.price_completion_per_1m) / 1e6

    @classmethod
    def resolve(cls, request: dict[str, Any], spec: TaskSpec) -> GenerationSettings:
        section = spec.section("generation")
        s = cls()
        # The pipeline's own names (target_count, random_seed) are accepted in the section too.
        s.target = _number(request.get("target_count") or section.get("target") or section.get("target_count")
                           or section.get("num_examples") or DEFAULT_TARGET, "target", int)
        s.temperature = _number(request.get("temperature") or section.get("temperature", s.temperature), "temperature")
        s.top_p = _number(request.get("top_p") or section.get("top_p", s.top_p), "top_p")
        s.random_seed = _number(request.get("random_seed") or section.get("seed", section.get("random_seed", s.random_seed)), "seed", int)
        for name in ("batch_size", "input_shots", "label_shots", "input_max_tokens", "label_max_tokens"):
            setattr(s, name, _number(section.get(name, getattr(s, name)), name, int))
        s.calibrate_labels = bool(section.get("calibrate_labels", False))
        s.label_source = str(section.get("label_source", s.label_source)).strip().lower()
        s.teacher_trust_accuracy = _number(section.get("teacher_trust_accuracy", s.teacher_trust_accuracy),
                                           "teacher_trust_accuracy")
        s.label_temperature = _number(section.get("label_temperature", s.label_temperature), "label_temperature")
        single = section.get("price_per_1m_tokens")
        s.price_prompt_per_1m = _number(section.get("price_per_1m_prompt_tokens", single or 0.0),
                                        "price_per_1m_prompt_tokens")
        s.price_completion_per_1m = _number(section.get("price_per_1m_completion_tokens", single or 0.0),
                                            "price_per_1m_completion_tokens")
        s.check()
        return s

    def check(self) -> None:
        if not 1 <= self.target <= MAX_TARGET:
            raise InvalidArgument(f"target_count must be between 1 and {MAX_TARGET}, got {self.target}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidArgument(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidArgument(f"top_p must be in (0, 1], got {self.top_p}")
        if self.batch_size < 1:
            raise InvalidArgument(f"generation.batch_size must be at least 1, got {self.batch_size}")
        if self.label_source not in LABEL_SOURCES:
            raise InvalidArgument(f"generation.label_source must be one of {', '.join(LABEL_SOURCES)}, "
                                  f"got {self.label_source!r}")
        if not 0.0 <= self.teacher_trust_accuracy <= 1.0:
            raise InvalidArgument("generation.teacher_trust_accuracy must be in [0, 1], "
                                  f"got {self.teacher_trust_accuracy}")
