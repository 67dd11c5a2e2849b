"""The generator's vLLM-free core: prompts, constraints, parsing, the per-row plan, settings."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from services.common.errors import InvalidArgument
from services.common.taskspec import OutputError, TaskSpec, load_task
from services.generator.backend import Constraint, normalize_probabilities
from services.generator.labeling import fixed_label_shots
from services.generator.method import clean_input, input_problem, plan_row, row_seed
from services.generator.openai_backend import first_token_probabilities
from services.generator.prompting import (
    PROMPTS_DIR,
    label_constraint,
    mutations,
    parse_label,
    render_input_prompt,
    render_label_prompt,
    tool_calls_schema,
)
from services.generator.settings import GenerationSettings

TASKS = Path(__file__).resolve().parents[1] / "data" / "generator_tasks"


@pytest.fixture(scope="module")
def bundles():
    return {name: load_task(TASKS / name) for name in ("intent", "contact", "weather_tools")}


def test_templates_are_files_for_every_family() -> None:
    for family in ("classification", "extraction", "tool_calling", "qa"):
        for stage in ("input", "label"):
            assert (PROMPTS_DIR / f"{family}_{stage}.j2").is_file()
    assert "none" in mutations() and {"shorter", "longer", "complex", "specific"} <= set(mutations())


def test_prompts_are_few_shot_continuations(bundles) -> None:
    intent = bundles["intent"]
    prompt = render_input_prompt(intent.spec, [s.input for s in intent.seeds[:4]], label="card", mutation="longer",
                                 topic="travel abroad")
    assert prompt.endswith("Example 5:")
    assert 'label is "card"' in prompt and "travel abroad" in prompt and "longer" in prompt
    shots = fixed_label_shots(intent.spec, intent.seeds, random_seed=0)
    assert {s.output for s in shots} == set(intent.spec.labels)  # every label is shown at least once
    label = render_label_prompt(intent.spec, shots, "My card\nis   stuck")
    assert label.endswith("Input: My card is stuck\nLabel:")
    contact = bundles["contact"]
    assert render_label_prompt(contact.spec, contact.seeds[:2], "x").endswith("Text: x\nOutput:")
    tools = bundles["weather_tools"]
    prompt = render_label_prompt(tools.spec, tools.seeds[:2], "x")
    assert prompt.endswith("Request: x\nCalls:") and '"city"' in prompt


def test_constraints_accept_every_seed_output(bundles) -> None:
    intent = bundles["intent"].spec
    assert label_constraint(intent) == Constraint.choice([" card", " transfer", " balance"])
    for name in ("contact", "weather_tools"):
        bundle = bundles[name]
        constraint = label_constraint(bundle.spec)
        assert constraint.kind == "json"
        assert constraint.structured_outputs()["disable_any_whitespace"] is True
        for seed in bundle.seeds:
            jsonschema.validate(json.loads(seed.output), constraint.schema)
    schema = tool_calls_schema(bundles["weather_tools"].spec)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"name": "get_weather", "arguments": {"town": "x"}}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([], schema)  # allow_no_call is false


def test_parse_label_never_crashes_on_garbage(bundles) -> None:
    intent, contact, tools = (bundles[n].spec for n in ("intent", "contact", "weather_tools"))
    assert parse_label(intent, " transfer") == "transfer"
    assert parse_label(contact, '{"name": "A B", "city": "Rome"}') == '{"name":"A B","city":"Rome"}'
    assert parse_label(tools, '{"name":"get_time","arguments":{"city":"Oslo"}}') == \
        '[{"name":"get_time","arguments":{"city":"Oslo"}}]'
    for spec, garbage in ((intent, "transfers"), (contact, '{"name": "A'), (contact, '{"name": 3, "city": "x"}'),
                          (tools, '[{"name":"get_time","arguments":{"city":'), (tools, "[]"), (contact, "")):
        with pytest.raises(OutputError):
            parse_label(spec, garbage)


def test_row_plan_is_deterministic_and_balanced(bundles) -> None:
    intent = bundles["intent"]
    shots = fixed_label_shots(intent.spec, intent.seeds, 7)
    first = [plan_row(intent.spec, intent.seeds, [], i, 7, 4, shots) for i in range(30)]
    again = [plan_row(intent.spec, intent.seeds, [], i, 7, 4, shots) for i in range(30)]
    assert [p.input_prompt for p in first] == [p.input_prompt for p in again]
    assert [p.seed for p in first] == [row_seed(7, i, "input") for i in range(30)]
    other_seed = [plan_row(intent.spec, intent.seeds, [], i, 8, 4, shots).input_prompt for i in range(30)]
    assert other_seed != [p.input_prompt for p in first]
    targets = [p.target_label for p in first]
    assert {label: targets.count(label) for label in intent.spec.labels} == {"card": 10, "transfer": 10, "balance": 10}
    # The input shots of a classification row are seeds of its target label.
    by_input = {s.input: s.output for s in intent.seeds}
    assert all(by_input[shot] == p.target_label for p in first for shot in p.input_shots)
    assert len({p.mutation for p in first}) > 2 and any(p.topic for p in first)


def test_context_passages_steer_inputs(bundles) -> None:
    contact = bundles["contact"]
    plans = [plan_row(contact.spec, contact.seeds, ["Invoices are sent from our office in Vienna."], i, 0)
             for i in range(20)]
    with_passage = [p for p in plans if p.passage]
    assert with_passage and "Vienna" in with_passage[0].input_prompt


def test_clean_input_and_copy_detection() -> None:
    assert clean_input(' "Example 7: My card broke."\nExample 8: more') == "My card broke."
    assert clean_input("Example 7: My card broke.\nExample 8: more") == "My card broke."
    assert clean_input("  'quoted text'  ") == "quoted text"
    seen = {"what is my current balance": "seed 9"}
    assert input_problem("What is my current balance?", seen) == "input repeats seed 9"
    assert input_problem("", seen) == "empty input"
    assert input_problem("ok", seen).startswith("input too short")
    assert input_problem("A new question about fees", seen) is None


def test_settings_precedence_and_errors() -> None:
    spec = TaskSpec(name="t", type="classification", description="d", labels=["a", "b"],
                    settings={"generation": {"target": 40, "temperature": 0.5, "seed": 3, "batch_size": 8,
                                             "price_per_1m_prompt_tokens": 1.0,
                                             "price_per_1m_completion_tokens": 2.0}})
    s = GenerationSettings.resolve({"target_count": 12, "random_seed": "9"}, spec)
    assert (s.target, s.temperature, s.random_seed, s.batch_size) == (12, 0.5, 9, 8)
    assert s.cost(1_000_000, 500_000) == pytest.approx(2.0)
    assert GenerationSettings.resolve({}, spec).target == 40
    with pytest.raises(InvalidArgument, match="temperature"):
        GenerationSettings.resolve({"temperature": 3.0}, spec)
    with pytest.raises(InvalidArgument, match="target_count"):
        GenerationSettings.resolve({"target_count": -1}, spec)


def test_choice_probabilities() -> None:
    probs = normalize_probabilities({"a": -0.1, "b": -2.0, "c": float("-inf")})
    assert probs["a"] > probs["b"] > probs["c"] == 0.0 and sum(probs.values()) == pytest.approx(1.0)
    top = {" card": -0.2, " trans": -1.5, " bal": -3.0}
    probs = first_token_probabilities(top, [" card", " transfer", " balance"])
    assert max(probs, key=probs.get) == " card" and sum(probs.values()) == pytest.approx(1.0)


def test_contextual_calibration_corrects_a_biased_teacher(bundles) -> None:
    from services.generator.backend import Completion
    from services.generator.labeling import calibrate, content_free_prior, label_prompts

    calibrated = calibrate({"card": 0.6, "transfer": 0.3, "balance": 0.1}, {"card": 0.8, "transfer": 0.1, "balance": 0.1})
    assert max(calibrated, key=calibrated.get) == "transfer" and sum(calibrated.values()) == pytest.approx(1.0)

    class Biased:  # says "card" with p=0.6 for everything, even for content-free inputs
        name = "biased"

        def complete(self, request):
            def probs(prompt):
                if prompt.rsplit("Input:", 1)[1].strip() in ("N/A\nLabel:", "Label:", "[MASK]\nLabel:"):
                    return {" card": 0.8, " transfer": 0.1, " balance": 0.1}
                return {" card": 0.6, " transfer": 0.3, " balance": 0.1}
            return [Completion(text=" card", choice_probabilities=probs(p)) for p in request.prompts]

        def close(self):
            pass

    spec = bundles["intent"].spec
    shots = bundles["intent"].seeds[:3]
    prior = content_free_prior(Biased(), spec, shots)
    assert prior["card"] == pytest.approx(0.8)
    from services.generator.prompting import render_label_prompt
    outcome = label_prompts(Biased(), spec, [render_label_prompt(spec, shots, "send 5 euros to Bob")], [1],
                            prior=prior)[0]
    assert outcome.output == "transfer"
    assert label_prompts(Biased(), spec, [render_label_prompt(spec, shots, "x")], [1])[0].output == "card"


def test_label_source_settings() -> None:
    spec = TaskSpec(name="t", type="classification", description="d", labels=["a", "b"],
                    settings={"generation": {"label_source": "Agreement", "teacher_trust_accuracy": "0.6"}})
    s = GenerationSettings.resolve({}, spec)
    assert (s.label_source, s.teacher_trust_accuracy) == ("agreement", 0.6)
    # the request's own fields win over the section; the pipeline's names are the section's aliases
    both = GenerationSettings.resolve({"target_count": 7, "random_seed": "0"},
                                      TaskSpec(name="t", type="classification", description="d", labels=["a"],
                                               settings={"generation": {"target_count": 5, "seed": 3,
                                                                        "price_per_1m_tokens": 2}}))
    assert (both.target, both.random_seed, both.price_prompt_per_1m, both.price_completion_per_1m) == (7, 3, 2.0, 2.0)
    defaults = GenerationSettings.resolve({}, TaskSpec(name="t", type="classification", description="d",
                                                       labels=["a", "b"]))
    assert (defaults.label_source, defaults.teacher_trust_accuracy) == ("auto", 0.8)  # the defence is on
    for bad, match in (({"label_source": "student"}, "label_source must be one of"),
                       ({"teacher_trust_accuracy": 1.5}, "teacher_trust_accuracy must be in"),
                       ({"teacher_trust_accuracy": "high"}, "generation.teacher_trust_accuracy: expected a number"),
                       ({"tempreature": 0.5}, "unknown generation setting generation.tempreature; known keys"),
                       ({"target": 5, "target_count": 6}, "another name of generation.target is set too"),
                       ({"backend": "llamacpp"}, "generation.backend 'llamacpp' is not a backend")):
        with pytest.raises(InvalidArgument, match=match):
            GenerationSettings.resolve({}, TaskSpec(name="t", type="classification", description="d",
                                                    labels=["a", "b"], settings={"generation": bad}))


def test_label_distribution_uses_exactly_the_task_labels() -> None:
    from services.generator.label_source import label_distribution

    spec = TaskSpec(name="t", type="classification", description="d", labels=["card", "transfer", "balance"])
    probs = label_distribution(spec, {" card": 0.5, "transfer": 0.25, "other": 0.25})
    assert probs == {"card": 0.6667, "transfer": 0.3333, "balance": 0.0}
    assert label_distribution(spec, {}) == {}
