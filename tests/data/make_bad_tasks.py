"""Writes the bad task folders under tests/data/bad_tasks (committed; rerun to regenerate).
Each folder has an expected_error.txt holding the exact message the loader must give."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parent / "bad_tasks"
TASK = "type: classification\ndescription: Sentiment of a short review.\nlabels: [positive, negative]\n"
GOOD = [
    ("I loved every minute of it", "positive"), ("Terrible service and cold food", "negative"),
    ("A wonderful, warm film", "positive"), ("The plot made no sense at all", "negative"),
    ("Best purchase I made this year", "positive"), ("It broke after two days", "negative"),
    ("The staff were friendly and quick", "positive"), ("I want my money back", "negative"),
    ("Beautifully written and acted", "positive"), ("Boring from start to finish", "negative"),
    ("Exceeded all my expectations", "positive"), ("Never going back there again", "negative"),
]
TEST = [("Great value for the price", "positive"), ("Awful, just awful", "negative")]


def rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in pairs)


def write(name: str, expected: str, task: str = TASK, seeds: str | None = None, test: str | None = None) -> None:
    folder = ROOT / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(task)
    (folder / "seeds.jsonl").write_text(rows(GOOD) if seeds is None else seeds)
    (folder / "test.jsonl").write_text(rows(TEST) if test is None else test)
    (folder / "expected_error.txt").write_text(expected + "\n")


def main() -> None:
    bad_label = list(GOOD)
    bad_label[6] = (GOOD[6][0], "positiv")
    write("unknown_label", 'seeds.jsonl:7: output "positiv" is not one of the labels [positive, negative]',
          seeds=rows(bad_label))
    write("too_few_seeds", "seeds.jsonl: has 3 seed example(s); at least 10 are needed so the teacher sees the "
          "task's variety (10-50 is typical), or give a traces.jsonl", seeds=rows(GOOD[:3]))
    dup = list(GOOD)
    dup[8] = ("i LOVED every minute of it!", "positive")
    write("duplicate_seed", "seeds.jsonl:9: input duplicates line 1; each seed must be different", seeds=rows(dup))
    write("seed_in_test", "seeds.jsonl:5: input also appears in test.jsonl:2; a seed in the held-out test set "
          "would inflate the evaluation", test=rows([TEST[0], GOOD[4]]))
    write("unknown_task_type", 'task.yaml: type "summarization" is not a task type; choose one of classification, '
          "extraction, qa-open-book, qa-closed-book, tool-calling, multi-turn-tool-calling",
          task=TASK.replace("classification", "summarization"))
    lines = rows(GOOD).splitlines(keepends=True)
    lines[4] = '{"input": "Broken line", "output": "positive"\n'
    write("malformed_json", "seeds.jsonl:5: not valid JSON: Expecting ',' delimiter (column 46)", seeds="".join(lines))
    lines = rows(GOOD).splitlines(keepends=True)
    lines[2] = json.dumps({"input": "No answer here"}) + "\n"
    write("missing_output", 'seeds.jsonl:3: field "output" is missing', seeds="".join(lines))
    lines = rows(GOOD).splitlines(keepends=True)
    lines[3] = json.dumps({"input": 42, "output": "positive"}) + "\n"
    write("wrong_input_type", 'seeds.jsonl:4: field "input" must be a string, got number', seeds="".join(lines))
    extraction = ("type: extraction\ndescription: Extract the person and their age.\noutput_schema:\n  type: object\n"
                  "  properties:\n    name: {type: string}\n    age: {type: integer}\n  required: [name, age]\n")
    ex_rows = [{"input": f"{n} is {a} years old.", "output": {"name": n, "age": a}}
               for n, a in [("Ann", 31), ("Bo", 45), ("Cy", 22), ("Di", 67), ("Ed", 19), ("Flo", 38),
                            ("Gus", 54), ("Hal", 27), ("Ivy", 41), ("Jo", 33)]]
    ex_rows[5]["output"] = {"name": "Flo", "age": "thirty-eight"}
    write("extraction_wrong_type", "seeds.jsonl:6: output field age: 'thirty-eight' is not of type 'integer'",
          task=extraction, seeds="".join(json.dumps(r) + "\n" for r in ex_rows),
          test=json.dumps({"input": "Kim is 50 years old.", "output": {"name": "Kim", "age": 50}}) + "\n")


if __name__ == "__main__":
    main()
