"""Format: the output must fit the task, judged exactly as seeds are (taskspec.check_output):
a classification output is one of the labels; an extraction output is a JSON object valid under
the task's JSON Schema; tool calls name existing tools with arguments valid under each tool's
parameter schema, and "no call" ([]) only where the task allows abstaining. Rows that pass get
their canonical output text (trimmed label, compact JSON)."""

from __future__ import annotations

from services.common.taskspec import OutputError, TaskSpec, check_output
from services.validator.row import Row


class FormatFilter:
    reason = "format"

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    def apply(self, rows: list[Row]) -> None:
        for row in rows:
            if not row.input.strip():
                row.reject(self.reason, "input is empty")
                continue
            if self.spec.type == "qa-open-book" and not row.context.strip():
                row.reject(self.reason, 'field "context" is missing: open-book QA needs the passage')
                continue
            try:
                row.output = check_output(self.spec, row.raw_output)
            except OutputError as exc:
                row.reject(self.reason, str(exc))

    def notes(self) -> list[str]:
        return []
