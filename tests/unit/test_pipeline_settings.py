"""How task.yaml settings, `--set` overrides and retune overrides combine."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.common.taskspec import load_task
from services.pipeline.cli import CliError, _parse_overrides
from services.pipeline.orchestrator import deep_merge, merged_settings
from tests.conftest import REPO


def test_dotted_set_keys_become_nested_sections() -> None:
    assert _parse_overrides(["validation.near_duplicate.threshold=0.6", "validation.near_duplicate.enabled=false",
                             "training.epochs=3", "task.student=qwen3-0.6b"]) == {
        "validation": {"near_duplicate": {"threshold": 0.6, "enabled": False}},
        "training": {"epochs": 3}, "task": {"student": "qwen3-0.6b"}}


@pytest.mark.parametrize("pairs", [["epochs=3"], ["training"], ["validation.off_topic=1", "validation.off_topic.x=2"]])
def test_malformed_set_keys_are_one_line_errors(pairs: list[str]) -> None:
    with pytest.raises(CliError, match="--set"):
        _parse_overrides(pairs)


def test_an_override_keeps_the_task_settings_it_does_not_name() -> None:
    spec = load_task(REPO / "examples" / "news-topic").spec
    settings = merged_settings(spec, {"validation": {"label_confidence": {"enabled": False}},
                                      "training": {"epochs": 5}})
    assert settings["validation"]["label_confidence"] == {"min_probability": 0.3, "enabled": False}
    assert settings["training"]["epochs"] == 5 and settings["training"]["batch_size"] == 8
    assert spec.settings["training"]["epochs"] == 2  # the task itself is not changed


def test_a_retune_override_merges_into_the_original_overrides() -> None:
    original = {"training": {"epochs": 2, "max_seq_len": 160}, "generation": {"target_count": 40}}
    merged = deep_merge(original, {"training": {"epochs": 4}, "validation": {"judge": {"enabled": True}}})
    assert merged == {"training": {"epochs": 4, "max_seq_len": 160}, "generation": {"target_count": 40},
                      "validation": {"judge": {"enabled": True}}}
    assert original["training"]["epochs"] == 2


def test_a_section_override_must_be_a_mapping() -> None:
    spec = load_task(REPO / "examples" / "news-topic").spec
    with pytest.raises(InvalidArgument, match="'training' must be a mapping"):
        merged_settings(spec, {"training": 3})


def test_every_generation_override_reaches_the_generator() -> None:
    """`--set generation.label_max_tokens=160` once stopped at the pipeline: only the keys with a
    request field of their own were sent. The generator now sees the whole merged section."""
    from services.common.artifacts import Artifact
    from services.common.convert import message_to_dict, task_from_proto
    from services.generator.settings import GenerationSettings
    from services.pipeline import workers
    from services.pipeline.orchestrator import generation_request

    spec = load_task(REPO / "examples" / "news-topic").spec
    settings = merged_settings(spec, {"generation": {"label_max_tokens": 160, "batch_size": 4, "target_count": 30}})
    call = generation_request(spec, settings, {"seeds": Artifact("file:///seeds.jsonl", "0" * 64, 1)})
    message = workers.generation_request(call)  # what goes over the wire
    received = task_from_proto(message.task)
    resolved = GenerationSettings.resolve(message_to_dict(message), received)  # as the generator stores it
    assert (resolved.label_max_tokens, resolved.batch_size, resolved.target) == (160, 4, 30)
    assert resolved.temperature == 0.9 and resolved.random_seed == 7  # task.yaml's own values still hold
    assert received.settings["validation"] == spec.settings["validation"]  # other sections untouched
    assert spec.settings["generation"].get("label_max_tokens") is None  # the task itself is not changed


def test_the_generator_reads_task_yaml_names_without_the_pipeline() -> None:
    """news-topic's task.yaml says target_count: 100 and random_seed: 7 (the pipeline's names); a
    direct StartGeneration with no request fields must honour them too."""
    from services.generator.settings import GenerationSettings

    resolved = GenerationSettings.resolve({}, load_task(REPO / "examples" / "news-topic").spec)
    assert (resolved.target, resolved.random_seed, resolved.temperature) == (100, 7, 0.9)
