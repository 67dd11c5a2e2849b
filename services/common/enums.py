"""The protos' enums as Python ``StrEnum``s, for core code that builds or reads job records.

Job requests and results travel and persist as proto-JSON dicts, where an enum is its proto name
(``"QUANTIZATION_INT8"``). Core code names them through these classes instead of spelling the
strings: ``Quantization.INT8``, ``ModelFormat.PEFT_ADAPTER``, ``CandidateKind.TEACHER``. Members
are built from the generated descriptors, so the protos stay the one place the names are written
and a renamed value fails at import, not in a comparison that is silently never true. A member
is a ``str`` equal to its proto name (``Quantization.INT8 == "QUANTIZATION_INT8"``), so it goes
into JSON and compares with what a peer sent unchanged. ``*_UNSPECIFIED`` is left out.
"""

from __future__ import annotations

from enum import StrEnum

from distillery.v1 import common_pb2, evaluator_pb2, serving_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from services.common.errors import InvalidArgument


def _from_proto(name: str, proto_enum: EnumTypeWrapper, prefix: str) -> type[StrEnum]:
    members = {key.removeprefix(prefix): key for key in proto_enum.keys() if not key.endswith("_UNSPECIFIED")}
    return StrEnum(name, members, module=__name__)  # type: ignore[return-value]


ModelFormat = _from_proto("ModelFormat", common_pb2.ModelFormat, "MODEL_FORMAT_")
"""HF, PEFT_ADAPTER, ONNX, GGUF."""
CandidateKind = _from_proto("CandidateKind", evaluator_pb2.CandidateKind, "CANDIDATE_KIND_")
"""TEACHER, STUDENT, ONNX."""
Quantization = _from_proto("Quantization", serving_pb2.Quantization, "QUANTIZATION_")
"""NONE, INT8, INT4."""


def quantization(short: str) -> StrEnum:
    """A task file's short name (``int8``, ``int4``, ``none``/``fp32``) as a Quantization."""
    key = "NONE" if short.lower() in ("none", "fp32", "") else short.upper()
    try:
        return Quantization[key]
    except KeyError:
        choices = ", ".join(q.name.lower() for q in Quantization)
        raise InvalidArgument(f"unknown quantization {short!r}; choose {choices}") from None


def short_name(value: str) -> str:
    """``QUANTIZATION_INT8`` → ``int8`` (unspecified or unknown → ``none``)."""
    for member in Quantization:
        if member == value and member is not Quantization.NONE:
            return member.name.lower()
    return "none"


#: GGUF file types the export makes for llama.cpp / Ollama (StartExportRequest.gguf), as llama.cpp
#: names them. Strings in the proto (llama.cpp adds types; an enum would lag), checked here.
GGUF_TYPES: tuple[str, ...] = ("q8_0", "q4_k_m", "f16")


def gguf_types(names: object) -> tuple[str, ...]:
    """GGUF types asked for, lower-cased and de-duplicated; INVALID_ARGUMENT naming the choices."""
    try:  # a list, a tuple, a protobuf repeated field
        if isinstance(names, (str, bytes)):
            raise TypeError
        kinds = tuple(str(n).lower() for n in names)  # type: ignore[union-attr]
    except TypeError:
        raise InvalidArgument(f"gguf must be a list of GGUF types ({', '.join(GGUF_TYPES)}), got {names!r}") from None
    for kind in kinds:
        if kind not in GGUF_TYPES:
            raise InvalidArgument(f"gguf {kind!r} is not a GGUF type the export makes; choose from {', '.join(GGUF_TYPES)}")
    return tuple(dict.fromkeys(kinds))
