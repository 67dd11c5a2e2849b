"""The evaluator's client of the generator: ``Label`` (the teacher candidate) and ``Complete``
with a choice constraint (the LLM judge). The only evaluator module besides the servicer that
speaks gRPC; failures become typed errors with the address in the message."""

from __future__ import annotations

from typing import Any

import grpc
from distillery.v1 import common_pb2, generator_pb2, generator_pb2_grpc

from services.common.client import open_channel
from services.common.config import ClientSecurity
from services.common.convert import artifact_to_proto, struct_from, task_to_proto
from services.common.errors import FailedPrecondition, InvalidArgument, Unavailable
from services.common.taskspec import Example, TaskSpec


class GeneratorClient:
    def __init__(self, address: str, security: ClientSecurity | None = None) -> None:
        self.address = address
        self.channel = open_channel(address, security=security)
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def _call(self, method: str, request: Any, timeout: float) -> Any:
        try:
            # wait_for_ready: a generator that is still starting its engine is waited for.
            return getattr(self.stub, method)(request, timeout=timeout, wait_for_ready=True)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            where = f"generator {method} at {self.address}"
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"{where}: {code.name}: {details}") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"{where}: {details}") from None
            raise FailedPrecondition(f"{where}: {code.name}: {details}") from None

    def label(self, task: TaskSpec, seeds: Any, examples: list[Example], max_tokens: int = 0,
              timeout: float = 900.0) -> list[Any]:
        request = generator_pb2.LabelRequest(
            task=task_to_proto(task), temperature=0.0, max_tokens=max_tokens,
            examples=[common_pb2.Example(id=e.id, input=e.input, context=e.context,
                                         metadata=struct_from(e.metadata)) for e in examples])
        if seeds is not None:
            request.seeds.CopyFrom(artifact_to_proto(seeds))
        return list(self._call("Label", request, timeout).completions)

    def choose(self, prompts: list[str], choices: list[str], timeout: float = 900.0) -> list[Any]:
        """Complete raw prompts under a choice constraint, with choice probabilities."""
        request = generator_pb2.CompleteRequest(
            prompts=[generator_pb2.Prompt(text=p) for p in prompts],
            constraint=generator_pb2.OutputConstraint(choice=generator_pb2.ChoiceList(choices=choices)),
            max_tokens=4, temperature=0.0, choice_logprobs=True)
        return list(self._call("Complete", request, timeout).completions)

    def close(self) -> None:
        self.channel.close()
