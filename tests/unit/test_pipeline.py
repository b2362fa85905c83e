"""The step order is declared once, `jobs.core.pipeline.PIPELINE`; `recs --help`, README.md's step
table and docs/ARCHITECTURE.md's data-flow table list the steps in exactly that order."""

import re

from jobs.core.pipeline import PIPELINE
from jobs.ops import cli
from tests.conftest import REPO

STEPS = [step.name for step in PIPELINE]


def step_table(path, section=None):
    """First column of the first `| step | ...` table (under `section`, when given): the first
    word of each row's first `code` span, e.g. `build-training-set [--holdout-fraction 0.2]`."""
    text = (REPO / path).read_text()
    if section is not None:
        assert f"\n{section}\n" in text, f"{path} has no {section!r} section"
        text = text.split(f"\n{section}\n", 1)[1].split("\n## ", 1)[0]
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("| step |")), None)
    assert header is not None, f"{path}: no `| step | ...` table" + (f" under {section}"
                                                                      if section else "")
    names = []
    for line in lines[header + 2:]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        match = re.match(r"\|\s*`([^`\s]+)", line)
        assert match, f"{path}: a step row whose first cell is not `code`: {line}"
        names.append(match.group(1))
    return names


def test_pipeline_names_are_unique():
    assert len(set(STEPS)) == len(STEPS)


def test_readme_step_table_is_in_pipeline_order():
    assert step_table("README.md", "## Running steps") == [*STEPS, "run", "maintain"]


def test_architecture_data_flow_table_is_in_pipeline_order():
    assert step_table("docs/ARCHITECTURE.md") == STEPS


def test_recs_usage_lists_the_steps_in_pipeline_order(capsys):
    cli.main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    first = lines.index("steps, in pipeline order:") + 1
    listed = [line.strip() for line in lines[first:lines.index("", first)]]
    assert listed == [*STEPS, "run (all of them)"]
