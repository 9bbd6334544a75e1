"""The README stays true to the code."""

from __future__ import annotations

from pathlib import Path

from telemetryflow_bootstrap.domain.environment import markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_variable_table_is_generated_from_the_parser():
    """The README's table of environment variables is exactly the one generated from the
    parser's table (regenerate it with markdown_table() when a variable changes)."""
    text = README.read_text()
    start = text.index("<!-- env-table:start -->") + len("<!-- env-table:start -->")
    end = text.index("<!-- env-table:end -->")
    assert text[start:end].strip() == markdown_table().strip()


def test_readme_starts_with_the_two_commands():
    """The quick start's first two commands install-and-run the example, then run the tests,
    exactly as .ci/run does."""
    text = README.read_text()
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```sh\n")[1:3]]
    assert blocks[0].endswith("telemetryflow-run python examples/hello.py")
    assert blocks[1].endswith("pytest")
    ci = (README.parent / ".ci" / "run").read_text()
    assert "pip install -q -e '.[test]'" in ci and ci.rstrip().endswith("pytest")
