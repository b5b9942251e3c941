"""Every Python usage snippet of docs/operators.md (docs/snippets/*.py, whose marked regions the page
shows; docs/snippets/check_snippets.py keeps the two identical) runs without error."""

import pathlib
import runpy

import pytest

SNIPPETS = sorted((pathlib.Path(__file__).resolve().parents[2] / "docs" / "snippets").glob("*.py"))
SNIPPETS = [p for p in SNIPPETS if p.name != "check_snippets.py"]


def test_there_are_snippets():
    assert len(SNIPPETS) >= 20


@pytest.mark.parametrize("path", SNIPPETS, ids=[p.stem for p in SNIPPETS])
def test_snippet_runs(path):
    runpy.run_path(str(path), run_name="__main__")
