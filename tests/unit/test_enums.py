"""The StrEnums core code uses are the protos' enums: same names, nothing spelt twice."""

from __future__ import annotations

import json

import pytest
from distillery.v1 import common_pb2, evaluator_pb2, serving_pb2

from services.common.enums import CandidateKind, ModelFormat, Quantization, quantization, short_name
from services.common.errors import InvalidArgument


@pytest.mark.parametrize(("ours", "proto"), [(ModelFormat, common_pb2.ModelFormat),
                                             (CandidateKind, evaluator_pb2.CandidateKind),
                                             (Quantization, serving_pb2.Quantization)])
def test_members_are_the_proto_values_but_unspecified(ours, proto) -> None:
    assert {m.value for m in ours} == {k for k in proto.keys() if not k.endswith("_UNSPECIFIED")}
    for member in ours:
        assert proto.Value(member) > 0  # a member is accepted where the proto name is


def test_members_are_plain_strings_in_json_and_comparisons() -> None:
    assert json.loads(json.dumps({"format": ModelFormat.PEFT_ADAPTER})) == {"format": "MODEL_FORMAT_PEFT_ADAPTER"}
    assert CandidateKind.TEACHER == "CANDIDATE_KIND_TEACHER"


def test_short_quantization_names_round_trip() -> None:
    assert quantization("int8") is Quantization.INT8
    assert quantization("fp32") is quantization("none") is Quantization.NONE
    assert [short_name(quantization(q)) for q in ("int8", "int4", "none")] == ["int8", "int4", "none"]
    assert short_name("QUANTIZATION_UNSPECIFIED") == "none"
    with pytest.raises(InvalidArgument, match="unknown quantization 'int3'; choose none, int8, int4"):
        quantization("int3")
