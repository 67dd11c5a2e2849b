"""One settings mechanism for every job's settings (generation, validation, training, evaluation,
serving): a dataclass per scope, built from task.yaml's section and the request's overrides by
``build_settings``, which

- coerces each value by the field's type hint (a google.protobuf.Struct carries every number as a
  float and proto-JSON int64 as a string, so 64.0 and "64" are the integer 64; 2.5 is not),
- recurses into nested settings dataclasses,
- refuses an unknown key with InvalidArgument naming its full path (``validation.grounded.feilds``)
  and the keys that path knows: a typo that silently runs with a default is worse than a refusal,
- and calls the dataclass's ``validate()`` when it has one (range checks that need several fields).

The help of a field is the comment written directly above it (or after it, on its line) — one
source for the code's reader and for ``docs/settings.md``, which ``settings_markdown`` renders (the
way vLLM derives CLI help from its config classes' field docs)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

from services.common.errors import InvalidArgument

S = TypeVar("S")

_TRUE = ("true", "1")
_FALSE = ("false", "0")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names, or InvalidArgument saying what ``where`` expected."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return coerce(value, arm, where)
            except InvalidArgument as exc:
                errors.append(str(exc).split(": expected ", 1)[-1].split(", got", 1)[0])
        raise InvalidArgument(f"{where}: expected {' or '.join(errors)}, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise InvalidArgument(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        number = _number(value)
        if number is None or number != int(number):
            raise InvalidArgument(f"{where}: expected an integer, got {value!r}")
        return int(number)
    if hint is float:
        number = _number(value)
        if number is None:
            raise InvalidArgument(f"{where}: expected a number, got {value!r}")
        return float(number)
    if hint is str:
        if not isinstance(value, str):
            raise InvalidArgument(f"{where}: expected a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise InvalidArgument(f"{where}: expected a list, got {value!r}")
        (item_hint,) = typing.get_args(hint)
        return [coerce(item, item_hint, f"{where}[{index}]") for index, item in enumerate(value)]
    raise InvalidArgument(f"{where}: unsupported setting type {hint!r}")  # pragma: no cover - a config bug


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def apply_settings(target: Any, values: Mapping[str, Any], where: str) -> None:
    """Set ``values`` on the settings dataclass ``target`` (nested dataclasses recursively)."""
    if not isinstance(values, Mapping):
        raise InvalidArgument(f"{where}: expected a mapping of settings, got {values!r}")
    hints = _hints(type(target))
    known = [f.name for f in dataclasses.fields(target)]
    for key, value in values.items():
        path = f"{where}.{key}"
        if key not in known:
            scope = where.split(".", 1)[0]
            raise InvalidArgument(f"unknown {scope} setting {path}; known keys of {where}: {', '.join(known)}")
        current = getattr(target, key)
        if dataclasses.is_dataclass(current):
            if value is not None:
                apply_settings(current, value, path)
        elif value is None and not _optional(hints[key]):
            continue  # an explicit null keeps the default
        else:
            setattr(target, key, coerce(value, hints[key], path))


def build_settings(cls: type[S], *sources: Mapping[str, Any] | None, where: str) -> S:
    """Defaults ← each source in turn (task.yaml's section, then the request's overrides), checked."""
    settings = cls()
    for source in sources:
        if source:
            apply_settings(settings, source, where)
    validate = getattr(settings, "validate", None)
    if callable(validate):
        validate()
    return settings


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


# ----- help and docs -------------------------------------------------------------------------
@cache
def field_help(cls: type) -> dict[str, str]:
    """Field → its help: the comment lines directly above the field (section rulers such as
    ``# --- batches`` left out) or the comment after it on its own line."""
    source = textwrap.dedent(inspect.getsource(cls))
    lines = source.splitlines()
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    out: dict[str, str] = {}
    for item in node.body:
        if not (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)):
            continue
        above: list[str] = []
        index = item.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#"):
            text = lines[index].strip().lstrip("#").strip()
            if not text.startswith("---"):
                above.insert(0, text)
            index -= 1
        line = lines[item.lineno - 1]
        trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        out[item.target.id] = " ".join(part for part in (*above, trailing) if part)
    return out


def settings_rows(cls: type, where: str) -> list[tuple[str, str, str, str]]:
    """(path, type, default, help) for every field, nested settings flattened under their path."""
    rows: list[tuple[str, str, str, str]] = []
    hints = _hints(cls)
    helps = field_help(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        path = f"{where}.{f.name}"
        if dataclasses.is_dataclass(value):
            rows.extend(settings_rows(type(value), path))
            continue
        help_text = helps.get(f.name, "")
        if not help_text and f.name == "enabled" and cls.__doc__:
            # a nested section's on/off switch: what it switches is the section's docstring
            help_text = "Turns on: " + " ".join(cls.__doc__.split())
        rows.append((path, _type_name(hints[f.name]), _default_text(value), help_text))
    return rows


def settings_markdown(cls: type, where: str) -> str:
    """A markdown table of ``cls``'s settings under ``where`` (for docs/settings.md)."""
    lines = ["| setting | type | default | meaning |", "|---|---|---|---|"]
    for path, kind, default, help_text in settings_rows(cls, where):
        lines.append(f"| `{path}` | {kind} | {default} | {help_text.replace('|', '/')} |")
    return "\n".join(lines)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arm) for arm in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return {bool: "bool", int: "int", float: "float", str: "string", type(None): "null"}.get(hint, str(hint))


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    return f"`{value}`"
