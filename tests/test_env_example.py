"""`.env.example` documents exactly the settings `Settings` reads, each with its default and a comment.

Operators copy the file to `.env`; a setting missing from it is a knob nobody finds, and a stale
name is one that silently does nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
# An assignment, active (`HITL_X=1`) or commented out as "unset" (`# HITL_X=1`).
ASSIGNMENT = re.compile(r"^(?P<off>#\s*)?(?P<name>HITL_[A-Z0-9_]+)=(?P<value>.*)$")


def parse() -> list[tuple[int, str, bool, str]]:
    """(line index, name, active, value) for every HITL_ assignment in the file."""
    found = []
    for index, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()):
        match = ASSIGNMENT.match(line.strip())
        if match:
            found.append((index, match["name"], not match["off"], match["value"]))
    return found


def expected_names() -> set[str]:
    return {f"HITL_{name.upper()}" for name in Settings.model_fields}


def test_lists_exactly_the_settings_fields() -> None:
    names = [name for _, name, _, _ in parse()]
    assert len(names) == len(set(names)), (
        f"listed twice: {sorted(n for n in names if names.count(n) > 1)}"
    )
    assert set(names) - expected_names() == set(), "names that Settings does not read"
    assert expected_names() - set(names) == set(), "Settings fields missing from .env.example"


def test_each_setting_has_an_explaining_comment_above_it() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for index, name, _, _ in parse():
        above = lines[index - 1].strip() if index > 0 else ""
        assert above.startswith("#") and not ASSIGNMENT.match(above), (
            f"{name}: no comment line above"
        )
        assert len(above.lstrip("# ")) >= 10, f"{name}: the comment above says too little"


def test_the_file_loads_and_its_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HITL_"):
            monkeypatch.delenv(key)
    from_file = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_file.model_dump() == defaults.model_dump()
    active = {name for _, name, is_active, _ in parse() if is_active}
    assert active, "every setting is commented out"
