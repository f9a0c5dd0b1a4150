"""The README's commands are the ones CI and users run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def _commands() -> dict:
    import typer.main

    from attnviz.cli import app

    group = typer.main.get_command(app)
    return {
        name: {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        for name, command in group.commands.items()
    }


def _section(title: str) -> str:
    return re.search(rf"\n### {title}\n(.*?)(?=\n##)", README, flags=re.S).group(1)


# flags a section names for another command or program, in prose ("merged as `--words`
# merges them"; Slurm's `--array=0-7`)
OTHER_COMMANDS_FLAGS = {"eval": {"--words"}, "html": {"--diagnostics"}, "export": {"--array"}}


@pytest.mark.parametrize("name", ["translate", "heatmap", "export", "html", "explain", "eval"])
def test_every_flag_in_a_command_section_exists(name):
    commands = _commands()
    text = _section(name)
    other = "|".join(command for command in commands if command != name)
    text = re.sub(rf"`(attnviz )?({other}) [^`]*`", "", text)  # `export --refs`
    text = "\n".join(
        line
        for line in text.splitlines()
        if not re.match(rf"\s*(#SBATCH|torchrun|(.*\| )?attnviz ({other})\b)", line)
    )
    mentioned = set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))
    assert len(mentioned) > 3, name
    unknown = mentioned - commands[name] - OTHER_COMMANDS_FLAGS.get(name, set())
    assert not unknown, (name, sorted(unknown))


def test_commands_said_to_take_threads_do():
    said = re.search(r"The commands that decode batches \(([^)]*)\) take\s+`--threads N`", README)
    names = re.findall(r"`(\w+)`", said.group(1))
    commands = _commands()
    assert names == [name for name in commands if "--threads" in commands[name] and name != "train"]


def test_defaults_quoted_in_readme_match_the_code():
    from attnviz.export.options import ExportOptions
    from attnviz.options import DEFAULT_BATCH_SIZE, MAX_BEAM, MAX_TOPK
    from attnviz.translator import MAX_THREADS

    translate = _section("translate")
    assert f"`--batch-size` lines at a time\n(default {DEFAULT_BATCH_SIZE}," in translate
    export = _section("export")
    assert f"batches of `--batch-size` sentences, default {DEFAULT_BATCH_SIZE}," in export
    chunk = f"{ExportOptions().chunk_lines:,}"
    assert f"`--chunk-lines` lines (default {chunk};" in export
    assert f"at most {MAX_THREADS:,})" in README
    assert f"(at most {MAX_TOPK})" in translate
    assert f"above {MAX_BEAM} (`attnviz.options.MAX_BEAM`)" in README
