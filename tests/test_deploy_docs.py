"""The examples in docs/deploy.md run as written.

Each fenced ``python`` block runs in a fresh namespace (in this process, so the heavy imports
are shared with the other tests), in a temporary directory, offline. A block whose first
line is ``# (continued)`` runs after the block before it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "deploy.md"
CONTINUED = "# (continued)"


def _examples() -> list[tuple[str, str]]:
    """(id, code) per python block, a continued block prefixed with its predecessor."""
    blocks = re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    examples: list[tuple[str, str]] = []
    for i, block in enumerate(blocks):
        if block.startswith(CONTINUED):
            if not examples:
                raise ValueError(f"{DOC}: the first python block cannot be '{CONTINUED}'")
            block = examples[-1][1] + "\n" + block
        examples.append((f"block{i + 1}", block))
    return examples


EXAMPLES = _examples()


def test_doc_has_the_three_forms() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith("## Use it in your training loop")
    for needle in ("PolicyScheduler(", "lrpilot.integrations.hf import PolicyLRCallback",
                   "lrpilot.integrations.lightning import PolicyLRCallback", '"reduce_on_plateau": True'):
        assert any(needle in code for _, code in EXAMPLES), needle


@pytest.mark.slow
@pytest.mark.parametrize(("name", "code"), EXAMPLES, ids=[name for name, _ in EXAMPLES])
def test_doc_example_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    needs = {"lightning": "import lightning" in code, "accelerate": "from transformers import" in code}
    for module in (m for m, needed in needs.items() if needed):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (pip install {module}); the Trainer/Lightning example needs it")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as out:
        warnings.simplefilter("ignore")
        exec(compile(code, f"{DOC.name}:{name}", "exec"), {"__name__": "__main__"})  # noqa: S102 - our own docs
    assert out.getvalue() or "print(" not in code


def test_readme_carries_the_tested_examples() -> None:
    """README's "Use it in your training loop" is docs/deploy.md verbatim, so its examples are the ones run here."""
    readme = (DOC.parent.parent / "README.md").read_text(encoding="utf-8")
    assert DOC.read_text(encoding="utf-8").strip() in readme
