"""Production traces: the file formats read (and the errors for lines that are not traces), the
curation (duplicates, near copies, seed copies, test leaks, off-topic), the committee vote and the
leak-free split. The teacher's real answers go through tests/integration/test_traces_service.py; here the
answers are given so that each decision rule is pinned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.common.errors import FailedPrecondition, TaskFolderError
from services.common.taskspec import Example, TaskSpec, Tool, load_task
from services.common.traces import parse_trace, read_traces
from services.pipeline.traces import TracesSettings, curate, relabel, split

SPEC = TaskSpec(name="topics", type="classification", description="Classify the topic of a news headline.",
                labels=["sport", "tech", "politics"],
                label_descriptions={"sport": "matches, teams and athletes", "tech": "phones, software, computers",
                                    "politics": "government, elections and parliament"})
TOOLS = TaskSpec(name="t", type="tool-calling", description="Call the weather tool.",
                 tools=[Tool("get_weather", "The weather in a city.",
                             {"type": "object", "properties": {"city": {"type": "string"}}})])


def chat(text: str, answer: str | None = None, system: str = "You are a helpful classifier.") -> dict:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return {"messages": messages}


def test_both_trace_shapes_are_read() -> None:
    plain = parse_trace(SPEC, chat("Lakers win the final", "sport"), "traces.jsonl", 1)
    assert (plain.input, plain.answer) == ("Lakers win the final", "sport")
    logged = parse_trace(SPEC, {"request": {"model": "gpt-4o", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "New phone"}, {"type": "text", "text": "launched"}]}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "tech"}}]}}, "traces.jsonl", 2)
    assert (logged.input, logged.answer) == ("New phone\nlaunched", "tech")
    unanswered = parse_trace(SPEC, {"request": {"messages": [{"role": "user", "content": "Vote count"}]}},
                             "traces.jsonl", 3)
    assert unanswered.answer is None


def test_an_old_answer_that_does_not_fit_is_kept_out_not_an_error() -> None:
    trace = parse_trace(SPEC, chat("Election night", "Politics, clearly."), "traces.jsonl", 4)
    assert trace.answer is None and "not one of the labels" in trace.answer_error


def test_tool_calls_in_the_answer_become_the_task_output() -> None:
    row = {"messages": [{"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": None, "tool_calls": [
                            {"type": "function", "function": {"name": "get_weather",
                                                              "arguments": "{\"city\": \"Paris\"}"}}]}]}
    trace = parse_trace(TOOLS, row, "traces.jsonl", 1)
    assert trace.answer_error == ""
    assert json.loads(trace.answer) == [{"name": "get_weather", "arguments": {"city": "Paris"}}]


@pytest.mark.parametrize("row,where", [
    ([1, 2], "traces.jsonl:7: each line must be a JSON object"),
    ({"prompt": "hi"}, 'traces.jsonl:7: a trace needs "messages"'),
    ({"messages": []}, "traces.jsonl:7: messages must be a non-empty list"),
    ({"messages": [{"content": "no role"}]}, "traces.jsonl:7: messages[0] must be an object with a role"),
    ({"messages": [{"role": "system", "content": "x"}]}, "traces.jsonl:7: messages has no user message"),
    ({"request": {"messages": [{"role": "user", "content": "x"}]}, "response": {"choices": []}},
     "traces.jsonl:7: response must be an OpenAI chat completion"),
])
def test_a_line_that_is_not_a_trace_is_an_error_naming_line_and_field(row, where) -> None:
    with pytest.raises(TaskFolderError) as err:
        parse_trace(SPEC, row, "traces.jsonl", 7)
    assert str(err.value).startswith(where), str(err.value)


def test_a_task_folder_with_traces_needs_no_seeds_or_test(tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text("type: classification\ndescription: Classify a headline.\n"
                                        "labels: [sport, tech]\n")
    (tmp_path / "traces.jsonl").write_text(json.dumps(chat("Lakers win")) + "\n" + "{not json\n")
    with pytest.raises(TaskFolderError, match=r"traces.jsonl:2"):
        load_task(tmp_path)
    (tmp_path / "traces.jsonl").write_text(json.dumps(chat("Lakers win")) + "\n")
    bundle = load_task(tmp_path)
    assert (len(bundle.seeds), len(bundle.test), len(bundle.traces)) == (0, 0, 1)
    assert read_traces(SPEC, tmp_path / "traces.jsonl")[0].input == "Lakers win"


def _traces(rows: list[dict]) -> list:
    return [parse_trace(SPEC, row, "traces.jsonl", i) for i, row in enumerate(rows, start=1)]


SEEDS = [Example(input=f"{team} beat {other} in the cup final", output="sport", metadata={"line": i})
         for i, (team, other) in enumerate([("Leeds", "Hull"), ("Celtic", "Rangers"), ("Ajax", "PSV")], start=1)]
TEST = [Example(input="Parliament votes on the new budget bill tonight", output="politics", metadata={"line": 1})]


def test_curation_drops_duplicates_near_copies_seed_copies_leaks_and_off_topic() -> None:
    traces = _traces([
        chat("Apple unveils a faster phone with a new chip"),  # 1 kept
        chat("apple unveils a FASTER phone, with a new chip!"),  # 2 exact duplicate after normalising
        chat("Apple unveils a faster phone with a new chip today"),  # 3 near copy of 1
        chat("Leeds beat Hull in the cup final"),  # 4 a seed
        chat("Parliament votes on the new budget bill tonight!"),  # 5 the test input
        chat("Parliament votes on the new budget bill tonight again"),  # 6 near copy of the test input
        chat("zzzz qqqq xxxx"),  # 7 nothing in common with the task
        chat("?!"),  # 8 no words
        chat("The election result gives the government a majority in parliament"),  # 9 kept
    ])
    kept, report = curate(SPEC, traces, SEEDS, TEST, TracesSettings())
    assert [t.line for t in kept] == [1, 9]
    reasons = {d["line"]: d["reason"] for d in report.dropped}
    assert reasons == {2: "duplicate", 3: "near_duplicate", 4: "seed_copy", 5: "test_leak", 6: "test_leak",
                       7: "off_topic", 8: "empty"}
    assert report.counts()["test_leak"] == 2 and sum(report.counts().values()) == 7


def test_a_trace_the_seeds_do_not_cover_is_kept_when_other_traces_are_like_it() -> None:
    traces = _traces([chat("MPs vote on taxes tonight"), chat("MPs vote on schools tonight"),
                      chat("The government wins the vote on taxes in parliament tonight"),
                      chat("zzzz qqqq xxxx"), chat("zzzz qqqq yyyy")])
    kept, report = curate(SPEC, traces, [], [], TracesSettings())
    assert [t.line for t in kept] == [1, 2, 3]
    assert [d["reason"] for d in report.dropped] == ["off_topic", "off_topic"]  # noise next to noise is noise


class Answers:
    """The teacher's answers by (input, pass): pass 0 greedy, then samples."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.passes: list[list[str]] = []

    def __call__(self, rows: list[Example], temperature: float, random_seed: int) -> list[str]:
        number = len(self.passes)
        self.passes.append([r.input for r in rows])
        assert (temperature == 0.0) == (number == 0)
        return [self.table[r.input][min(number, len(self.table[r.input]) - 1)] for r in rows]


def test_the_committee_settles_disagreements_and_drops_what_it_cannot() -> None:
    traces = _traces([chat("agree", "sport"), chat("flip", "tech"), chat("split"), chat("junk")])
    answers = Answers({"agree": ["sport", "sport"], "flip": ["tech", "sport", "tech", "tech", "sport"],
                       "split": ["sport", "tech", "politics", "sport", "tech"], "junk": ["??", "??"]})
    report = curate(SPEC, [], [], [], TracesSettings())[1]
    rows = relabel(SPEC, traces, answers, TracesSettings(committee_size=5), report)
    assert [(r.input, r.output) for r in rows] == [("agree", "sport"), ("flip", "tech")]
    assert answers.passes[2:] == [["flip", "split"]] * 3  # only the disagreements go to the committee
    assert report.committee == 2
    assert {d["reason"] for d in report.dropped} == {"teacher_unsure", "teacher_invalid"}
    assert rows[1].metadata["teacher_agreement"] == 0.6
    assert (report.with_old_answer, report.old_answer_agrees) == (2, 2)


def _labelled(n: int, label_of) -> list[Example]:
    return [Example(input=f"headline number {i}", output=label_of(i)) for i in range(n)]


def test_the_split_holds_out_test_traces_and_gives_every_label_seeds() -> None:
    rows = _labelled(50, lambda i: "politics" if i < 3 else "sport")
    report = curate(SPEC, [], [], [], TracesSettings())[1]
    split(SPEC, rows, 0, False, TracesSettings(max_seeds=12, test_fraction=0.2, random_seed=3), report)
    assert len(report.test) == 10 and len(report.seeds) == 12 and report.unused == 28
    assert not {r.input for r in report.test} & {r.input for r in report.seeds}
    left = [r for r in rows if r.input not in {t.input for t in report.test}]
    assert sum(r.output == "politics" for r in report.seeds) == sum(r.output == "politics" for r in left)


def test_too_few_traces_for_seeds_is_a_clear_error() -> None:
    report = curate(SPEC, [], [], [], TracesSettings())[1]
    with pytest.raises(FailedPrecondition, match="at least 10 seeds are needed"):
        split(SPEC, _labelled(8, lambda i: "sport"), 0, False, TracesSettings(), report)
    split(SPEC, _labelled(8, lambda i: "sport"), 10, True, TracesSettings(), report)  # the task's seeds suffice
    assert len(report.seeds) == 8 and report.test == []
