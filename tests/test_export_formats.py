"""Every export format round-trips: what its reader gives back equals what was written."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from export_support import runner, write_input

from attnviz.alignment import Alignment
from attnviz.cli import app
from attnviz.errors import InputError
from attnviz.export import (
    FORMATS,
    ExportOptions,
    SentenceGroup,
    read_figures,
    read_html,
    read_jsonl,
    read_npz,
    read_pharaoh,
)
from attnviz.export.folder import OutputFolder
from attnviz.options import DecodeOptions


def alignment(rng, source: str, n_src: int, n_tgt: int, rank: int = 0) -> Alignment:
    weights = rng.random((n_tgt, n_src)).astype(np.float32)
    weights /= weights.sum(axis=1, keepdims=True)
    return Alignment(
        source=source,
        translation=" ".join(f"t{j}" for j in range(n_tgt - 1)),
        src_tokens=[f"▁s{i}" for i in range(n_src - 1)] + ["</s>"],
        tgt_tokens=[f"▁t{j}" for j in range(n_tgt - 1)] + ["</s>"],
        weights=weights,
        scores=rng.normal(size=(n_tgt, n_src)).astype(np.float32),
        token_logprobs=-rng.random(n_tgt).astype(np.float32),
        score=float(-rng.random()),
        rank=rank,
    )


def make_groups(nbest: int, count: int = 6, seed: int = 0) -> list[SentenceGroup]:
    """Lines of every kind: translated (with n-best), empty, failed."""
    rng = np.random.default_rng(seed)
    groups = []
    for index in range(count):
        source = f"sentence {index} ü 한국어"
        if index % 3 == 1:
            groups.append(SentenceGroup(index, "", (Alignment.empty(""),)))
        elif index % 3 == 2:
            groups.append(SentenceGroup(index, source, error=f"line {index + 1}: no good"))
        else:
            hyps = tuple(alignment(rng, source, 4 + index, 3 + index, r) for r in range(nbest))
            groups.append(SentenceGroup(index, source, hyps))
    return groups


def write(fmt_name: str, folder: Path, groups, options: ExportOptions, split: int = 2) -> str:
    """Write ``groups`` with one format, committing every ``split`` groups, then finish."""
    fmt = FORMATS[fmt_name](OutputFolder(folder), options)
    fmt.open(0)
    try:
        for start in range(0, len(groups), split):
            for group in groups[start : start + split]:
                fmt.write(group)
            fmt.commit()
        return fmt.finish()
    finally:
        fmt.close()


def keyed(groups, nbest):
    return [(key, a) for g in groups for key, a in g.keyed(nbest)]


def figure_keys(groups, nbest):
    return sorted(
        key for g in groups if g.best is not None and g.best.shape[0] for key, _ in g.keyed(nbest)
    )


# each format: what reading its output back must give, from the groups written
ROUND_TRIPS = {
    "jsonl": (lambda path: list(read_jsonl(path)), lambda groups, nbest: groups),
    "pharaoh": (
        lambda path: list(read_pharaoh(path)),
        lambda groups, nbest: [sorted(g.best.hard_links()) if g.best else [] for g in groups],
    ),
    "npz": (
        lambda path: [(key, array.tolist()) for key, array in read_npz(path)],
        lambda groups, nbest: [(key, a.weights.tolist()) for key, a in keyed(groups, nbest)],
    ),
    "html": (lambda path: list(read_html(path)), lambda groups, nbest: groups),
    "figures": (
        lambda path: sorted(read_figures(path)),
        lambda groups, nbest: sorted(figure_keys(groups, nbest)),
    ),
}


def test_every_format_has_a_round_trip():
    assert set(ROUND_TRIPS) == set(FORMATS)


@pytest.mark.parametrize("nbest", [1, 2])
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_round_trip(tmp_path, name, nbest):
    groups = make_groups(nbest)
    options = ExportOptions(
        decode=DecodeOptions(beam=2, nbest=nbest),
        npz=True,
        html=True,
        figures="png",
        figure_workers=1,
    )
    final = write(name, tmp_path, groups, options)
    assert final == FORMATS[name].filename
    read, expected = ROUND_TRIPS[name]
    got = read(tmp_path / final)
    assert got == expected(groups, nbest)
    assert len(got) > 0
    # nothing but the final entry is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [final]


def test_jsonl_records_are_the_documented_ones(tmp_path):
    groups = make_groups(nbest=2)
    options = ExportOptions(decode=DecodeOptions(beam=2, nbest=2))
    write("jsonl", tmp_path, groups, options)
    lines = (tmp_path / "alignments.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["id"] == 0 and records[0]["nbest"][0]["rank"] == 1
    assert Alignment.from_dict(records[0]["nbest"][0]) == groups[0].alignments[1]
    assert records[2] == {"id": 2, "source": groups[2].source, "error": "line 3: no good"}


def test_figures_are_images(tmp_path):
    groups = make_groups(nbest=1)
    write("figures", tmp_path, groups, ExportOptions(figures="svg", figure_workers=1))
    figures = read_figures(tmp_path / "figures")
    assert sorted(figures) == ["0", "3"]
    for path in figures.values():
        assert path.suffix == ".svg" and b"<svg" in path.read_bytes()[:400]


@pytest.mark.parametrize("name", ["jsonl", "pharaoh", "npz", "html"])
def test_reopening_at_the_committed_size_drops_what_came_after(tmp_path, name):
    """An interrupted run resumed at its last commit writes the same bytes as one run."""
    groups = make_groups(nbest=1, count=9)
    options = ExportOptions(npz=True, html=True)
    straight = tmp_path / "straight"
    straight.mkdir()
    write(name, straight, groups, options, split=3)

    resumed = tmp_path / "resumed"
    resumed.mkdir()
    fmt = FORMATS[name](OutputFolder(resumed), options)
    fmt.open(0)
    for group in groups[:3]:
        fmt.write(group)
    committed = fmt.commit()
    for group in groups[3:5]:  # written, then the run dies before the commit
        fmt.write(group)
    fmt.close()
    with (resumed / f"{FORMATS[name].filename}.partial").open("ab") as torn:
        torn.write(b"half a chunk written before the kill")

    fmt = FORMATS[name](OutputFolder(resumed), options)
    fmt.open(committed)
    for start in (3, 6):
        for group in groups[start : start + 3]:
            fmt.write(group)
        fmt.commit()
    final = fmt.finish()
    assert (resumed / final).read_bytes() == (straight / final).read_bytes()


def test_npz_with_more_entries_than_a_plain_zip_holds(tmp_path):
    """Past 65,535 entries the archive needs ZIP64 end records; numpy still reads it."""
    count = 70_000
    empty = (Alignment.empty(""),)
    groups = [SentenceGroup(i, "", empty) for i in range(count)]
    write("npz", tmp_path, groups, ExportOptions(npz=True), split=10_000)
    with zipfile.ZipFile(tmp_path / "attention.npz") as archive:
        assert archive.testzip() is None
        assert len(archive.namelist()) == count
    keys = [key for key, _ in read_npz(tmp_path / "attention.npz")]
    assert keys == [str(i) for i in range(count)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ('{"id": "x", "source": "a", "error": "e"}\n', "'id' must be a whole number"),
        ('{"source": "a"}\n', "lacks"),
        ('{"nbest": 3, "source": "a"}\n', "'nbest' must be a list"),
        ("\n\n", "no alignment records"),
    ],
)
def test_jsonl_reader_errors_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "records.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        list(read_jsonl(path))
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_heatmap_from_deeply_nested_json_is_one_line(tmp_path):
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    result = runner.invoke(app, ["heatmap", "--from", str(path), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert f"{path}:1: not a JSON alignment record" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pharaoh_reader_refuses_other_text(tmp_path):
    path = write_input(tmp_path / "links.pharaoh", ["0-0 1-2", "", "0-x"])
    with pytest.raises(InputError, match=r"links.pharaoh:3: '0-x' is not a link"):
        list(read_pharaoh(path))


def test_figures_folder_replaced_during_the_run_is_refused(tmp_path):
    from attnviz.errors import OutputError

    fmt = FORMATS["figures"](OutputFolder(tmp_path), ExportOptions(figures="png", figure_workers=1))
    fmt.open(0)
    try:
        (tmp_path / "figures").rename(tmp_path / "moved")
        (tmp_path / "figures").mkdir()
        with pytest.raises(OutputError, match="figures: replaced during the export"):
            fmt.commit()
    finally:
        fmt.close()
