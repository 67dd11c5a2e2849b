"""LLM judge (optional): the teacher grades each example against the task's judge instructions.
The prompt is a plain-text completion (the default teacher is a base model) whose answer is
constrained to the choice ``yes`` / ``no``; the probability of ``yes`` (from the choice's
logprobs, or 1/0 from the chosen text when the backend gives no probabilities) must reach the
threshold. The grader is injected — in the service, a client of the generator's Complete RPC
(services/validator/judge_client.py) — so this module stays free of gRPC."""

from __future__ import annotations

from collections.abc import Callable

from services.common.taskspec import TaskSpec
from services.validator.config import JudgeConfig
from services.validator.row import Row

# prompts → probability of "yes" for each
Grader = Callable[[list[str]], list[float]]
CHOICES = ("yes", "no")

_DEFAULT_INSTRUCTIONS = ("Accept the example only if the input is a realistic request for this task and the "
                         "output is a correct, complete answer to it.")


def judge_prompt(spec: TaskSpec, instructions: str, row: Row) -> str:
    parts = [f"Task: {spec.description.strip()}"]
    if spec.labels:
        parts.append("Labels: " + ", ".join(spec.labels))
    parts.append(f"Grading instructions: {(instructions or _DEFAULT_INSTRUCTIONS).strip()}")
    if row.context:
        parts.append(f"Passage: {row.context}")
    parts.append(f"Input: {row.input}")
    parts.append(f"Output: {row.output}")
    parts.append("Is this output a correct answer to this input that follows the instructions? "
                 "Answer yes or no.\nAnswer:")
    return "\n\n".join(parts)


class JudgeFilter:
    reason = "judge_rejected"

    def __init__(self, config: JudgeConfig, spec: TaskSpec, grader: Grader) -> None:
        self.config = config
        self.spec = spec
        self.grader = grader
        self.instructions = config.instructions or spec.judge_instructions
        self.graded = 0

    def apply(self, rows: list[Row]) -> None:
        size = self.config.batch_size
        for start in range(0, len(rows), size):
            chunk = rows[start:start + size]
            scores = self.grader([judge_prompt(self.spec, self.instructions, row) for row in chunk])
            if len(scores) != len(chunk):
                raise RuntimeError(f"judge returned {len(scores)} grades for {len(chunk)} examples")
            self.graded += len(chunk)
            for row, score in zip(chunk, scores):
                if score < self.config.threshold:
                    row.reject(self.reason, f"judge's probability of yes {score:.3f} < {self.config.threshold}")

    def notes(self) -> list[str]:
        return []
