"""The students' decode budget: the type's default, raised to fit the seeds' longest answer."""

from __future__ import annotations

from services.evaluator.candidates import CandidateSpec, EvalOptions, build_candidate
from services.serving.testing import SENTIMENT
from tests.helpers.tasks import CONLL


def _build(task, options: EvalOptions, outputs: list[str]):
    return build_candidate(CandidateSpec("student", "student", model_uri="smollm2-135m-instruct"), task, options,
                           resolve=lambda uri: uri, client_factory=lambda _: None, generator_endpoint="",
                           device="cpu", seed_outputs=outputs)


def test_new_tokens_fit_the_answers_unless_configured() -> None:
    options = EvalOptions.from_dict({})
    assert options.new_tokens(SENTIMENT) == 16 and options.new_tokens(CONLL) == 256
    assert options.new_tokens(CONLL, [40, 120]) == 256  # short answers: the default
    assert options.new_tokens(CONLL, [300]) == 466  # 1.5 x 300 + 16
    assert EvalOptions.from_dict({"max_new_tokens": 48}).new_tokens(CONLL, [300]) == 48


def test_candidates_fit_to_every_label_or_to_the_seed_outputs() -> None:
    options = EvalOptions.from_dict({})
    assert _build(SENTIMENT, options, ["positive"]).answers == list(SENTIMENT.labels)
    outputs = ['{"entities":[]}', '{"entities":[{"text":"EU","type":"ORG"}]}']
    assert _build(CONLL, options, outputs).answers == outputs
