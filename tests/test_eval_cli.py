"""``attnviz eval``, ``--diagnostics`` and ``--links`` on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.eval import CorpusScorer, evaluate, read_pharaoh

ROOT = Path(__file__).resolve().parent.parent
TEST_SET = ROOT / "sample_models" / "test"
PAIRS = 24  # of the shipped held-out set, enough for every path and quick


def invoke(*args, **kwargs):
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def one_line_error(result, *fragments: str) -> str:
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("attnviz: error:"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("eval-data")
    files = {"pairs": "enko.tsv", "koen": "koen.tsv", "gold": "enko.pharaoh"}
    paths = {}
    for key, name in files.items():
        lines = (TEST_SET / name).read_text("utf-8").splitlines()[:PAIRS]
        paths[key] = folder / name
        paths[key].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def exports(data, tmp_path_factory) -> dict[str, Path]:
    """Forced decoding of the pairs both ways, exported at piece and at word level."""
    folder = tmp_path_factory.mktemp("eval-exports")
    runs = {
        "forward": [data["pairs"], "--model", "enko-additive"],
        "words": [data["pairs"], "--model", "enko-additive", "--words"],
        "reverse": [data["koen"], "--model", "koen-additive"],
    }
    out = {}
    for name, args in runs.items():
        out[name] = folder / name
        result = invoke("export", *args, "--refs", "--out", out[name], "--device", "cpu")
        assert result.exit_code == 0, result.output
    return out


def rows(result) -> dict[str, dict]:
    assert result.exit_code == 0, result.output
    return {row["label"]: row for row in json.loads(result.stdout)["rows"]}


def test_eval_of_a_model_equals_the_library(data):
    result = invoke(
        "eval", data["pairs"], "--gold", data["gold"], "--model", "enko-additive", "--json",
        "--device", "cpu",
    )  # fmt: skip
    (row,) = rows(result).values()
    from attnviz import load_model

    lines = data["pairs"].read_text("utf-8").splitlines()
    sources, refs = zip(*(line.split("\t") for line in lines), strict=True)
    forced = load_model("enko-additive", device="cpu").translate(list(sources), refs=list(refs))
    scorer = CorpusScorer()
    for _ in evaluate(enumerate(forced), scorer, gold=read_pharaoh(data["gold"])):
        pass
    expected = scorer.summary()
    assert row["label"] == "enko-additive" and row["sentences"] == PAIRS
    for key in ("aer", "precision", "recall", "f1", "links", "sure", "entropy", "cdp", "ap_in"):
        assert row[key] == expected[key], key
    assert 0 < row["aer"] < 0.3


def test_symmetrisation_rows_from_models_and_from_exports_agree(data, exports):
    from_models = rows(
        invoke(
            "eval", data["pairs"], "--gold", data["gold"], "--model", "enko-additive",
            "--reverse-model", "koen-additive", "--sym", "all", "--json", "--device", "cpu",
        )
    )  # fmt: skip
    names = ["enko-additive", "koen-additive", "intersection", "union", "grow-diag"]
    names += ["grow-diag-final", "grow-diag-final-and"]
    assert list(from_models) == names
    from_exports = rows(
        invoke(
            "eval", exports["forward"], exports["reverse"], "--gold", data["gold"],
            "--sym", "intersection", "--sym", "union", "--json",
        )
    )  # fmt: skip
    assert list(from_exports) == [str(exports["forward"]), str(exports["reverse"]), *names[2:4]]
    for model_label, export_label in (
        ("enko-additive", str(exports["forward"])),
        ("koen-additive", str(exports["reverse"])),
        ("intersection", "intersection"),
        ("union", "union"),
    ):
        for key in ("aer", "precision", "recall", "links", "cdp"):
            assert from_models[model_label][key] == from_exports[export_label][key]
    # inclusion-exclusion, sentence by sentence and so over the corpus
    forward, backward = from_models["enko-additive"], from_models["koen-additive"]
    meet, join = from_models["intersection"], from_models["union"]
    assert meet["links"] + join["links"] == forward["links"] + backward["links"]
    assert join["recall"] >= max(forward["recall"], backward["recall"])
    for name in names[4:]:  # the grow heuristics lie between intersection and union
        assert meet["links"] <= from_models[name]["links"] <= join["links"]


def test_piece_and_word_exports_score_the_same(data, exports):
    pieces = rows(invoke("eval", exports["forward"], "--gold", data["gold"], "--json"))
    words = rows(invoke("eval", exports["words"], "--gold", data["gold"], "--json"))
    (a,), (b,) = pieces.values(), words.values()
    for key in ("aer", "precision", "recall", "links", "entropy", "cdp", "ap_in", "crossings"):
        assert a[key] == b[key], key


def test_worst_sentences_sorted_with_figures(data, exports, tmp_path):
    figures = tmp_path / "worst"
    result = invoke(
        "eval", exports["forward"], "--gold", data["gold"], "--worst", "3", "--json",
        "--figures", figures,
    )  # fmt: skip
    (row,) = rows(result).values()
    worst = row["worst"]
    assert len(worst) == 3
    assert [w["aer"] for w in worst] == sorted((w["aer"] for w in worst), reverse=True)
    drawn = sorted(figures.iterdir())
    assert len(drawn) == 3
    assert all(path.read_bytes()[:4] == b"\x89PNG" for path in drawn)
    assert {f"line{w['id'] + 1}.png" for w in worst} == {p.name.split("-")[-1] for p in drawn}
    by_entropy = rows(
        invoke("eval", exports["forward"], "--worst", "2", "--sort", "entropy", "--json")
    )
    entropies = [w["entropy"] for w in next(iter(by_entropy.values()))["worst"]]
    assert entropies == sorted(entropies, reverse=True) and len(entropies) == 2


def test_tables_on_the_terminal(data, exports):
    result = invoke("eval", exports["forward"], "--gold", data["gold"], "--worst", "2")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "alignment quality: 24 sentences, argmax links" in text
    assert "attention diagnostics: means per sentence" in text
    assert "worst by aer:" in text
    (row,) = rows(invoke("eval", exports["forward"], "--gold", data["gold"], "--json")).values()
    assert f"{row['aer']:.3f}" in text and f"{row['cdp']:.3f}" in text


def test_gold_that_does_not_fit_is_one_error_naming_the_line(data, exports, tmp_path):
    lines = data["gold"].read_text("utf-8").splitlines()
    lines[4] = "0-0 40-1"
    bad = tmp_path / "bad.pharaoh"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = invoke("eval", exports["forward"], "--gold", bad)
    assert result.exit_code == 1
    one_line_error(result, "sentence 5 (line 5)", "gold link 40-1 does not fit", "--one-indexed")
    # a 1-indexed file read as 0-indexed points past the words
    shifted = tmp_path / "one.pharaoh"
    shifted.write_text(
        "\n".join(
            " ".join(f"{i + 1}-{j + 1}" for i, j in sorted(g.sure))
            for g in read_pharaoh(data["gold"])
        )
        + "\n",
        encoding="utf-8",
    )
    one_line_error(invoke("eval", exports["forward"], "--gold", shifted), "does not fit")
    ok = rows(invoke("eval", exports["forward"], "--gold", shifted, "--one-indexed", "--json"))
    assert next(iter(ok.values()))["sentences"] == PAIRS


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--sym", "union"], 2, "--sym with exported alignments needs two INPUTs"),
        (["--sym", "grow"], 2, "unknown --sym 'grow'"),
        (["--links", "max"], 2, "unknown link method 'max'"),
        (["--sort", "aer"], 2, "--sort aer needs gold alignments"),
        (["--sort", "bleu"], 2, "unknown --sort 'bleu'"),
        (["--figures", "figs"], 2, "--figures draws the worst sentences"),
        (["--reverse-model", "koen-additive"], 2, "--reverse-model needs --model"),
        (["--one-indexed"], 2, "describe --gold"),
        (["--gold", "missing.pharaoh"], 1, "missing.pharaoh: no such file"),
        (["--worst", "-1"], 2, "--worst must be at least 0"),
    ],
)
def test_usage_errors(exports, args, code, fragment):
    result = invoke("eval", exports["forward"], *args)
    assert result.exit_code == code
    one_line_error(result, fragment)


def test_model_mode_errors(data, tmp_path):
    one_line_error(
        invoke("eval", data["pairs"], data["pairs"], "--model", "enko-additive"),
        "one TSV file of pairs",
    )
    one_line_error(
        invoke("eval", data["pairs"], "--model", "enko-additive", "--sym", "union"),
        "--sym needs --reverse-model",
    )
    no_tab = tmp_path / "no-tab.tsv"
    no_tab.write_text("the boy ate an apple .\n", encoding="utf-8")
    result = invoke("eval", no_tab, "--model", "enko-additive", "--device", "cpu")
    assert result.exit_code == 1
    one_line_error(result, "no-tab.tsv:1: no tab between source and reference")
    one_line_error(invoke("eval", tmp_path / "nothing"), "no such file or folder")


def test_translate_diagnostics_and_links():
    sentence = "the boy ate an apple ."
    table = invoke("translate", sentence, "--words", "--diagnostics", "--device", "cpu")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    (line,) = [ln for ln in lines if ln.startswith("diagnostics: ")]
    assert "CDP" in line and "unattended:" in line
    plain = invoke("translate", sentence, "--words", "--device", "cpu")
    assert "diagnostics:" not in plain.stdout
    assert [ln for ln in lines if not ln.startswith("diagnostics: ")] == plain.stdout.splitlines()
    out = invoke(
        "translate", sentence, "--words", "--json", "--diagnostics", "--links", "argmax-target",
        "--device", "cpu",
    )  # fmt: skip
    record = json.loads(out.stdout)
    from attnviz.alignment import Alignment

    alignment = Alignment.from_dict(record)
    assert record["alignment"] == alignment.pharaoh("argmax-target")
    expected = alignment.diagnostics().to_dict()
    assert record["diagnostics"].keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float):
            assert record["diagnostics"][key] == pytest.approx(value, abs=1e-6)
        else:
            assert record["diagnostics"][key] == value


def test_export_diagnostics_and_links(data, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "export", data["pairs"], "--refs", "--words", "--out", out, "--diagnostics",
        "--links", "both", "--device", "cpu",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "alignments.jsonl").read_text().splitlines()]
    pharaoh = (out / "alignments.pharaoh").read_text().splitlines()
    from attnviz.alignment import Alignment

    for record, line in zip(records, pharaoh, strict=True):
        alignment = Alignment.from_dict(record)
        assert line == record["alignment"] == alignment.pharaoh("both")
        assert record["diagnostics"]["unattended"] == list(alignment.diagnostics().unattended)
        assert np.isclose(record["diagnostics"]["cdp"], alignment.diagnostics().cdp)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["options"]["links"] == "both" and manifest["options"]["diagnostics"] is True


def test_readme_eval_command_prints_what_the_readme_shows():
    import re
    import shlex

    readme = (ROOT / "README.md").read_text("utf-8")
    match = re.search(
        r"```bash\n(attnviz eval sample_models/test/enko\.tsv[^`]*?)```\n\n```text\n(.*?)```",
        readme,
        flags=re.S,
    )
    assert match is not None
    command = shlex.split(match.group(1).replace("\\\n", " "))
    assert command[:2] == ["attnviz", "eval"]
    result = CliRunner().invoke(app, command[1:], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    shown = [line.rstrip() for line in match.group(2).strip("\n").splitlines()]
    printed = [line.rstrip() for line in result.stdout.strip("\n").splitlines()]
    assert printed == shown


def test_warns_when_an_export_was_not_decoded_on_the_references(tmp_path, data):
    out = tmp_path / "free"
    sources = tmp_path / "sources.txt"
    lines = data["pairs"].read_text("utf-8").splitlines()
    sources.write_text("\n".join(line.split("\t")[0] for line in lines) + "\n", "utf-8")
    assert invoke("export", sources, "--out", out, "--device", "cpu").exit_code == 0
    result = invoke("eval", out, "--gold", data["gold"])
    assert "warning: " in result.stderr and "exported without --refs" in result.stderr
