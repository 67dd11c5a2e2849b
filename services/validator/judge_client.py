"""The LLM judge's transport: the generator's Complete RPC (the teacher), asked for a ``yes`` /
``no`` choice with its probabilities. Kept apart from filters/judge.py so the filter chain never
imports gRPC."""

from __future__ import annotations

import grpc
from distillery.v1 import generator_pb2, generator_pb2_grpc

from services.common.client import open_channel
from services.common.config import ClientSecurity
from services.common.errors import Unavailable
from services.validator.filters.judge import CHOICES


class GeneratorGrader:
    """Callable: prompts → probability of "yes" for each, from one Complete call per batch."""

    def __init__(self, address: str, security: ClientSecurity | None = None, timeout: float = 300.0) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = open_channel(address, security=security)
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def __call__(self, prompts: list[str]) -> list[float]:
        request = generator_pb2.CompleteRequest(
            prompts=[generator_pb2.Prompt(text=p) for p in prompts],
            # " yes" / " no": after "Answer:" a base model writes the word with its leading space.
            constraint=generator_pb2.OutputConstraint(choice=generator_pb2.ChoiceList(
                choices=[" " + c for c in CHOICES])),
            max_tokens=2, temperature=0.0, random_seed=0, choice_logprobs=True)
        try:
            response = self.stub.Complete(request, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise Unavailable(f"LLM judge: the generator at {self.address} did not answer Complete "
                              f"({exc.code().name}: {exc.details()})") from None
        if len(response.completions) != len(prompts):
            raise Unavailable(f"LLM judge: the generator returned {len(response.completions)} completions "
                              f"for {len(prompts)} prompts")
        return [probability_of_yes(c) for c in response.completions]

    def close(self) -> None:
        self.channel.close()


def probability_of_yes(completion: generator_pb2.Completion) -> float:
    probs = {key.strip().lower(): value for key, value in completion.choice_probabilities.items()}
    if probs:
        total = sum(probs.values())
        return probs.get("yes", 0.0) / total if total > 0 else 0.0
    return 1.0 if completion.text.strip().lower().startswith("yes") else 0.0
