"""Validator settings: defaults, task.yaml ← request merge, unknown keys and bad values named."""

from __future__ import annotations

import pytest

from services.common.errors import InvalidArgument
from services.validator.config import ValidatorConfig, build_config


def test_defaults_are_on_where_sensible() -> None:
    config = build_config(None, None)
    assert config == ValidatorConfig()
    on = {name for name in ("format", "length", "duplicate", "near_duplicate", "test_leak", "off_topic",
                            "label_balance", "label_confidence") if getattr(config, name).enabled}
    assert len(on) == 8
    assert not config.agreement.enabled and not config.judge.enabled


def test_request_overrides_task_yaml_key_by_key() -> None:
    config = build_config({"near_duplicate": {"threshold": 0.9, "num_perm": 128}, "batch_size": 256},
                          {"near_duplicate": {"threshold": 0.7}})
    assert config.near_duplicate.threshold == 0.7
    assert config.near_duplicate.num_perm == 128  # kept from task.yaml
    assert config.batch_size == 256


def test_struct_floats_become_ints() -> None:
    # google.protobuf.Struct has only doubles: 64 arrives as 64.0.
    assert build_config({}, {"near_duplicate": {"num_perm": 64.0}}).near_duplicate.num_perm == 64
    with pytest.raises(InvalidArgument, match="validation.near_duplicate.num_perm: expected an integer"):
        build_config({}, {"near_duplicate": {"num_perm": 64.5}})


@pytest.mark.parametrize("overrides, message", [
    ({"near_duplicate": {"treshold": 0.9}}, "validation.near_duplicate.treshold"),
    ({"dedup": {}}, "validation.dedup"),
    ({"format": {"enabled": "yes"}}, "validation.format.enabled: expected true or false"),
    ({"off_topic": {"threshold": 2}}, "validation.off_topic.threshold must be between 0 and 1"),
    ({"length": 5}, "validation.length: expected a mapping"),
    ({"agreement": {"enabled": True}}, "neither predictions"),
    ({"off_topic": {"analyzer": "bert"}}, "analyzer"),
])
def test_bad_settings_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace(".", r"\.")):
        build_config({}, overrides)


def test_unknown_key_lists_the_known_ones() -> None:
    with pytest.raises(InvalidArgument) as err:
        build_config({"judge": {"treshold": 0.5}})
    assert "threshold" in str(err.value) and "batch_size" in str(err.value)
