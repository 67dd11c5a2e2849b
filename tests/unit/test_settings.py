"""The one settings mechanism (services/common/settings.py) and the five sections built on it:
coercion by type hint, unknown keys refused by path, nested sections, help from the comments,
and docs/settings.md generated from them."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.common.errors import InvalidArgument
from services.common.settings import build_settings, coerce, field_help, settings_rows

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import settings_doc  # noqa: E402


@dataclass
class Inner:
    """The inner section."""

    enabled: bool = False
    # Two lines of help
    # for one field.
    threshold: float = 0.5


@dataclass
class Outer:
    # --- a ruler, not help
    # How many.
    count: int = 3
    names: list[str] = field(default_factory=list)  # the names
    rate: float | None = None
    modules: str | list[str] = "all"
    inner: Inner = field(default_factory=Inner)

    def validate(self) -> None:
        if self.count < 1:
            raise InvalidArgument(f"outer.count must be >= 1, got {self.count}")


@pytest.mark.parametrize("value, hint, expected", [
    (64.0, int, 64), ("64", int, 64), (3, float, 3.0), ("0.25", float, 0.25), (True, bool, True),
    ("false", bool, False), ("TRUE", bool, True), ("x", str, "x"), ([1.0, 2.0], list[int], [1, 2]),
    (None, float | None, None), (2.0, float | None, 2.0), ("q", str | list[str], "q"), (["q"], str | list[str], ["q"]),
])
def test_values_are_coerced_by_their_type(value, hint, expected) -> None:
    result = coerce(value, hint, "s.k")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value, hint, message", [
    (2.5, int, "s.k: expected an integer, got 2.5"), (True, int, "s.k: expected an integer, got True"),
    ("yes", bool, "s.k: expected true or false, got 'yes'"), (1, bool, "s.k: expected true or false, got 1"),
    (3, str, "s.k: expected a string, got 3"), ("a", list[str], "s.k: expected a list, got 'a'"),
    ([1], list[str], r"s.k\[0\]: expected a string, got 1"), (3, str | list[str], "s.k: expected a string or a list"),
    ("fast", float | None, "s.k: expected a number, got 'fast'"),
])
def test_a_wrong_type_names_the_setting(value, hint, message) -> None:
    with pytest.raises(InvalidArgument, match=message):
        coerce(value, hint, "s.k")


def test_build_layers_sources_and_checks() -> None:
    built = build_settings(Outer, {"count": 5.0, "inner": {"threshold": 0.7}}, {"count": "6", "rate": None},
                           where="outer")
    assert (built.count, built.inner.threshold, built.inner.enabled, built.rate) == (6, 0.7, False, None)
    with pytest.raises(InvalidArgument, match=r"unknown outer setting outer\.inner\.treshold; known keys of "
                                              r"outer\.inner: enabled, threshold"):
        build_settings(Outer, {"inner": {"treshold": 1}}, where="outer")
    with pytest.raises(InvalidArgument, match=r"outer\.inner: expected a mapping of settings, got 3"):
        build_settings(Outer, {"inner": 3}, where="outer")
    with pytest.raises(InvalidArgument, match=r"outer\.count must be >= 1, got 0"):
        build_settings(Outer, {"count": 0}, where="outer")
    assert build_settings(Outer, {"count": None}, where="outer").count == 3  # null keeps the default


def test_help_comes_from_the_comments_and_rows_flatten_sections() -> None:
    assert field_help(Outer)["count"] == "How many."  # the ruler above it is not help
    assert field_help(Outer)["names"] == "the names"
    assert field_help(Inner)["threshold"] == "Two lines of help for one field."
    rows = {row[0]: row for row in settings_rows(Outer, "outer")}
    assert rows["outer.inner.enabled"] == ("outer.inner.enabled", "bool", "false", "Turns on: The inner section.")
    assert rows["outer.rate"][1:3] == ("float or null", "null")
    assert rows["outer.modules"][1] == "string or list of string"


def test_every_real_setting_has_help_and_the_doc_is_current() -> None:
    missing = [row[0] for _, cls, _ in settings_doc.SECTIONS for row in settings_rows(cls, "x") if not row[3]]
    assert not missing, f"settings without a help comment: {missing}"
    assert (ROOT / "docs" / "settings.md").read_text(encoding="utf-8") == settings_doc.render(), \
        "docs/settings.md is stale: run scripts/settings_doc.py"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "settings_doc.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_serving_section_is_typed_too() -> None:
    from services.pipeline.serving_settings import ServingSettings

    assert ServingSettings.from_section({"quantizations": ["int8", "int4"], "deploy": "false"}).deploy is False
    with pytest.raises(InvalidArgument, match="unknown quantization 'int3'"):
        ServingSettings.from_section({"serve": "int3"})
    with pytest.raises(InvalidArgument, match=r"unknown serving setting serving\.min_parrity"):
        ServingSettings.from_section({"min_parrity": 0.8})
