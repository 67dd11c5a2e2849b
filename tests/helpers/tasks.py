"""Task specs shared by tests."""

from __future__ import annotations

from services.common.taskspec import TaskSpec

# The CoNLL entity task (examples/conll-entities/task.yaml): entities copied from tokenised Reuters text.
CONLL = TaskSpec(
    name="conll-entities", type="extraction",
    description="List the named entities in a tokenized Reuters news sentence, copying each entity's words exactly.",
    output_schema={
        "type": "object",
        "properties": {"entities": {"type": "array", "items": {
            "type": "object",
            "properties": {"text": {"type": "string", "minLength": 1},
                           "type": {"enum": ["PER", "ORG", "LOC", "MISC"]}},
            "required": ["text", "type"], "additionalProperties": False}}},
        "required": ["entities"], "additionalProperties": False})
