"""The README's library example, run exactly as printed."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_library_example_runs_as_printed() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    example = next(block for block in blocks if "SagaHarness" in block)
    namespace: dict[str, object] = {}
    exec(compile(example, str(README), "exec"), namespace)  # the example asserts its own outcomes
    assert "harness" in namespace and "silent" in namespace
