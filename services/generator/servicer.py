"""GeneratorService over gRPC: protobuf in, plain Python through the core, protobuf out."""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from distillery.v1 import generator_pb2, generator_pb2_grpc

from services.common import envs
from services.common.artifacts import ArtifactStore
from services.common.convert import artifact_from_proto, message_from_record, message_to_dict, task_from_proto
from services.common.errors import InvalidArgument
from services.common.jobs import JobRunner
from services.common.operations_servicer import record_to_operation
from services.common.runtime import ServiceContext
from services.common.server import ServiceRegistration
from services.generator.backend import CompletionRequest, Constraint, PromptInput
from services.generator.handler import KIND, GenerationRequest, run_generation
from services.generator.inputs import check_task, examples_from_request, load_seeds
from services.generator.labeling import label_examples
from services.generator.settings import GenerationSettings
from services.generator.teachers import TeacherPool, default_teacher

log = logging.getLogger(__name__)
RESULT_TYPES = {KIND: generator_pb2.GenerationResult}
MAX_PROMPTS = 4096


def generation_request(request: generator_pb2.StartGenerationRequest) -> GenerationRequest:
    """StartGenerationRequest → GenerationRequest; INVALID_ARGUMENT naming what is missing or wrong."""
    if not request.HasField("task"):
        raise InvalidArgument("task is missing: send the TaskSpec (type, description, labels/schema/tools)")
    spec = task_from_proto(request.task)
    check_task(spec)
    # Only the fields the caller set (proto3 leaves the others at zero) override task.yaml.
    given = {"target_count": request.target_count, "temperature": request.temperature, "top_p": request.top_p,
             "random_seed": request.random_seed}
    settings = GenerationSettings.resolve(given, spec)
    seeds = artifact_from_proto(request.seeds)
    if seeds is None:
        raise InvalidArgument("seeds is missing: give the ArtifactRef of seeds.jsonl")
    if request.index_offset < 0:
        raise InvalidArgument(f"index_offset must be 0 or more, got {request.index_offset}")
    return GenerationRequest(spec=spec, settings=settings, seeds=seeds, context=artifact_from_proto(request.context),
                             index_offset=request.index_offset)


def request_from_record(record: dict[str, Any]) -> GenerationRequest:
    """The persisted request (proto-JSON, as StartGeneration stored it) as a GenerationRequest."""
    return generation_request(message_from_record(record, generator_pb2.StartGenerationRequest()))


def constraint_from_proto(message: generator_pb2.OutputConstraint) -> Constraint:
    kind = message.WhichOneof("kind")
    if kind == "choice":
        if not message.choice.choices:
            raise InvalidArgument("constraint.choice.choices is empty")
        return Constraint.choice(list(message.choice.choices))
    if kind == "json_schema":
        try:
            schema = json.loads(message.json_schema)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"constraint.json_schema is not valid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(schema, dict):
            raise InvalidArgument("constraint.json_schema must be a JSON object (a JSON Schema)")
        return Constraint.json_schema(schema)
    if kind == "regex":
        return Constraint(kind="regex", regex=message.regex)
    return Constraint()


def prompt_from_proto(message: generator_pb2.Prompt, index: int) -> PromptInput:
    kind = message.WhichOneof("kind")
    if kind == "text":
        return message.text
    if kind == "chat":
        if not message.chat.messages:
            raise InvalidArgument(f"prompts[{index}].chat has no messages")
        return [{"role": m.role or "user", "content": m.content} for m in message.chat.messages]
    raise InvalidArgument(f"prompts[{index}] is empty: set text or chat")


def completion_to_proto(completion: Any, text: str | None = None) -> generator_pb2.Completion:
    return generator_pb2.Completion(text=completion.text if text is None else text,
                                    prompt_tokens=completion.prompt_tokens,
                                    completion_tokens=completion.completion_tokens,
                                    choice_probabilities=completion.choice_probabilities)


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, runner: JobRunner, store: ArtifactStore, teachers: TeacherPool, home: Path) -> None:
        self.runner = runner
        self.store = store
        self.teachers = teachers
        self.home = home

    def StartGeneration(self, request: generator_pb2.StartGenerationRequest, context: Any) -> Any:
        # Bad requests fail here, synchronously, not minutes later inside the operation.
        job = generation_request(request)
        spec = job.spec
        self.teachers.check(spec.teacher or default_teacher(), spec.section("generation"))
        if not self.store.exists(job.seeds.uri):
            raise InvalidArgument(f"seeds {job.seeds.uri} does not exist in the artifact store")
        record = self.runner.submit(KIND, message_to_dict(request), request.request_id or None)
        return record_to_operation(record, RESULT_TYPES)

    def Complete(self, request: generator_pb2.CompleteRequest, context: Any) -> generator_pb2.CompleteResponse:
        if not request.prompts:
            raise InvalidArgument("prompts is empty")
        if len(request.prompts) > MAX_PROMPTS:
            raise InvalidArgument(f"{len(request.prompts)} prompts in one request; at most {MAX_PROMPTS}")
        constraint = constraint_from_proto(request.constraint)
        if request.choice_logprobs and constraint.kind != "choice":
            raise InvalidArgument("choice_logprobs needs a choice constraint")
        seeds = [request.random_seed + i for i in range(len(request.prompts))] if request.random_seed else None
        core = CompletionRequest(prompts=[prompt_from_proto(p, i) for i, p in enumerate(request.prompts)],
                                 constraint=constraint, max_tokens=request.max_tokens or 128,
                                 temperature=request.temperature, top_p=request.top_p or 1.0, seeds=seeds,
                                 stop=list(request.stop), choice_logprobs=request.choice_logprobs)
        backend = self.teachers.default()
        started = time.time()
        completions = backend.complete(core)
        return generator_pb2.CompleteResponse(completions=[completion_to_proto(c) for c in completions],
                                              model=backend.name, seconds=time.time() - started)

    def Label(self, request: generator_pb2.LabelRequest, context: Any) -> generator_pb2.LabelResponse:
        spec = task_from_proto(request.task)
        check_task(spec)
        if not request.examples:
            raise InvalidArgument("examples is empty: send the inputs to label")
        if len(request.examples) > MAX_PROMPTS:
            raise InvalidArgument(f"{len(request.examples)} examples in one request; at most {MAX_PROMPTS}")
        scratch = self.home / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            seeds = load_seeds(self.store, artifact_from_proto(request.seeds), spec, Path(tmp), required=False)
        examples = examples_from_request([message_to_dict(e) for e in request.examples])
        backend = self.teachers.for_task(spec)
        started = time.time()
        outcomes = label_examples(backend, spec, seeds, examples, temperature=request.temperature,
                                  random_seed=request.random_seed, max_tokens=request.max_tokens)
        return generator_pb2.LabelResponse(
            completions=[completion_to_proto(o.completion, o.output if o.output is not None else o.completion.text)
                         for o in outcomes],
            model=backend.name, seconds=time.time() - started)


def generator_registrations(servicer: GeneratorServicer) -> list[ServiceRegistration]:
    name = generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"].full_name
    return [ServiceRegistration(name, lambda server: generator_pb2_grpc.add_GeneratorServiceServicer_to_server(
        servicer, server))]


def build(ctx: ServiceContext) -> list[ServiceRegistration]:
    teachers = TeacherPool(ctx.config.home, ctx.references)
    ctx.runner.register(KIND, lambda op: run_generation(op, request_from_record(op.request), teachers.for_task))
    if envs.GENERATOR_WARMUP.get():
        # Start the default engine now, in the background, so the first request does not wait.
        def warm() -> None:
            try:
                backend = teachers.default()
                getattr(backend, "warm_up", lambda: None)()
            except Exception:
                log.exception("warming up the default teacher failed")
        threading.Thread(target=warm, name="teacher-warmup", daemon=True).start()
    return generator_registrations(GeneratorServicer(ctx.runner, ctx.store, teachers, ctx.config.home))
