"""The parser of docs/check_commands.py (the docs walk itself is manual and slow, never run here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "docs" / "check_commands.py"


def _module():
    spec = importlib.util.spec_from_file_location("check_commands", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_commands"] = module  # dataclasses look the module up by name
    spec.loader.exec_module(module)
    return module


DOC = """intro $ not a command
```text
$ python -m mtbench.freeze $R --united \\
      -o united/
wrote united
$ echo $?
2
```
```bash
# a comment
R=outputs/runs/x
python -m mtbench -m a=1,2 \\
    b=3   # trailing comment
```
```python
print("$ not shell")
```
"""


def test_text_blocks_give_dollar_lines_joined_across_backslashes() -> None:
    cmds = _module().extract(DOC, "doc.md")
    assert [(c.line, c.text) for c in cmds] == [(3, "python -m mtbench.freeze $R --united -o united/"),
                                                 (6, "echo $?")]


def test_bash_blocks_give_every_non_comment_line() -> None:
    cmds = _module().extract(DOC, "doc.md", langs=("bash",))
    assert [(c.line, c.lang, c.text) for c in cmds] == [
        (11, "bash", "R=outputs/runs/x"), (12, "bash", "python -m mtbench -m a=1,2 b=3   # trailing comment")]


def test_run_reports_exit_status_and_carries_assignments(tmp_path: Path) -> None:
    md = tmp_path / "x.md"
    md.write_text("```bash\nX=hello\ntest \"$X\" = hello\nexit 3\n```\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(SCRIPT), str(md), "--lang", "bash", "--scratch", str(tmp_path / "s")],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "x.md:3: exit 0" in out.stdout and "x.md:4: exit 3" in out.stdout
    assert "2 commands, 1 with a non-zero exit status" in out.stdout.splitlines()[-1]
