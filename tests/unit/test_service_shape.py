"""The shape every service keeps (issue 19), checked on the source so it stays true: no service
imports another's package, protobuf ⇄ dict conversion happens only at the edges, and core code
names proto enums through services.common.enums instead of spelling them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("generator", "validator", "trainer", "evaluator", "serving", "pipeline")
# The edges: inbound servicers, the pipeline's outbound worker clients and the converters themselves.
EDGES = {"servicer.py", "oip_servicer.py", "operations_servicer.py", "convert.py", "workers.py"}
# Modules that may hold generated protobuf types besides the edges: gRPC clients of another
# service (the evaluator's and validator's generator clients, the shared Operations client), the
# entry points that register servicers or talk to the pipeline (CLI), the service bootstrap that
# packs operation results, and the enum names.
PROTO_USERS = {"common/client.py", "evaluator/generator_client.py", "validator/judge_client.py", "pipeline/cli.py",
               "pipeline/__main__.py", "common/runtime.py", "common/enums.py"}


def _sources() -> list[Path]:
    return [p for p in (ROOT / "services").rglob("*.py") if "genproto" not in p.parts]


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_service_imports_another_services_package() -> None:
    crossings = []
    for path in _sources():
        own = path.relative_to(ROOT / "services").parts[0]
        for module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] in SERVICES and parts[1] != own:
                crossings.append(f"{path.relative_to(ROOT)} imports {module}")
    assert crossings == []


def test_protobuf_dict_conversion_only_at_the_edges() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _sources()
                 if p.name not in EDGES and re.search(r"\b(dict_to_message|message_to_dict|ParseDict|MessageToDict)\b",
                                                      p.read_text())]
    assert offenders == []


def test_core_modules_never_see_generated_protobuf() -> None:
    offenders = [f"{p.relative_to(ROOT)} imports {m}" for p in _sources()
                 if p.name not in EDGES and p.relative_to(ROOT / "services").as_posix() not in PROTO_USERS
                 for m in _imported_modules(p) if m.startswith(("distillery.v1", "google.protobuf"))]
    assert offenders == []


def test_core_modules_spell_no_proto_enum_names() -> None:
    literal = re.compile(r"""["'](QUANTIZATION|CANDIDATE_KIND|MODEL_FORMAT)_[A-Z0-9_]*["']""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _sources() if p.name not in EDGES | {"enums.py"}
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if literal.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


# The job kinds each service's handler.py owns (pipeline: DISTILLATION and RETUNE).
JOB_KINDS = {"generator": "generation", "validator": "validation", "trainer": "training",
             "evaluator": "evaluation", "serving": "export"}


def test_every_service_names_its_job_kind_in_handler_py() -> None:
    import importlib

    for service, kind in JOB_KINDS.items():
        handler = importlib.import_module(f"services.{service}.handler")
        servicer = importlib.import_module(f"services.{service}.servicer")
        assert handler.KIND == kind, service
        assert set(servicer.RESULT_TYPES) == {kind}, service  # the result type the Operations API packs
    pipeline = importlib.import_module("services.pipeline.servicer")
    assert set(pipeline.RESULT_TYPES) == {"distillation", "retune"}
