"""`layerwise train --help`: one group per purpose, each default said once, short enough to read."""

import argparse
import re
import subprocess
import sys

import pytest

from layerwise.cli import COMMAND_GROUPS, build_parser
from layerwise.config import GROUPS, SETTINGS


def _sub(name: str) -> argparse.ArgumentParser:
    actions = build_parser()._actions
    return next(a for a in actions if isinstance(a, argparse._SubParsersAction)).choices[name]


@pytest.fixture
def help_text(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    return _sub("train").format_help()


def _flag(s) -> str:
    return "--" + s.name.replace("_", "-")


def test_groups_in_order_with_one_line_descriptions(help_text):
    lines = help_text.splitlines()
    at = []
    for name, desc in GROUPS.items():
        if name in COMMAND_GROUPS:  # listed by its own command only
            heading = f"{name} ({desc}):"
            assert heading not in lines and heading in _sub(COMMAND_GROUPS[name]).format_help().splitlines()
            continue
        heading = f"{name} ({desc}):"
        assert heading in lines, heading
        at.append(lines.index(heading))
    assert at == sorted(at)
    assert all(s.group in GROUPS for s in SETTINGS)


def test_every_setting_keeps_its_flag(help_text):
    for s in SETTINGS:
        if s.group in COMMAND_GROUPS:
            assert _flag(s) not in help_text and _flag(s) in _sub(COMMAND_GROUPS[s.group]).format_help(), s.name
        elif s.name != "data":
            assert re.search(rf"^  {re.escape(_flag(s))}\b", help_text, re.MULTILINE), s.name
    assert "--lookback N" in help_text and "--window N" in help_text
    lr_find = _sub("lr-find").format_help()
    assert all(_flag(s) in lr_find for s in SETTINGS if s.name != "data" and s.group not in COMMAND_GROUPS)


def test_each_default_said_at_most_once(help_text):
    blocks = re.split(r"\n(?=  -)", help_text.split("\n\n", 3)[-1])  # one block per flag
    assert len(blocks) > len([s for s in SETTINGS if s.group not in COMMAND_GROUPS])
    for block in blocks:
        assert block.lower().count("default") <= 1, block
    actions = {a.dest: a for a in _sub("train")._actions}
    for s in SETTINGS:
        if s.name == "data" or s.group in COMMAND_GROUPS:
            continue
        said = actions[s.name].help
        assert said.lower().count("default") <= 1, s.name
        if s.default is not None and s.default is not False:  # a real default is said, once
            assert "default" in said, s.name
        if s.default is True:
            assert said.endswith("(default: on)"), s.name


def test_help_fits_in_151_lines_of_100_columns(help_text):
    lines = help_text.splitlines()
    assert len(lines) <= 151
    assert max(map(len, lines)) <= 100


def test_parser_without_torch_or_pydantic():
    code = ("import sys, layerwise.cli as c; c.build_parser(); "
            "print('torch' in sys.modules, 'pydantic' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
