"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def test_first_two_commands_install_translate_and_test():
    install, test = (block.strip() for block in bash_blocks()[:2])
    assert "pip install" in install and 'attnviz translate "' in install
    assert "pytest" in test and ".[test]" in test
    assert "torch==2.13.0" in install and "torch==2.13.0" in test


def test_ci_runs_the_readme_test_command_verbatim():
    test = bash_blocks()[1].strip()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci.splitlines()


def test_pictures_named_in_readme_exist():
    for path in re.findall(r"\]\((sample_models/[^)]+)\)", README):
        assert (ROOT / path).is_file(), path


def test_python_api_snippet_runs(tmp_path, monkeypatch):
    block = re.search(r"## Python API\n\n```python\n(.*?)```", README, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["best"].translation == "소년이 사과를 먹었다 ."
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert namespace["forced"][0].translation == "소년이 사과를 먹었다 ."
