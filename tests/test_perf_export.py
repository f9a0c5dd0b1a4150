"""The lean export path: decoding processes (--workers), float32 JSON in its shortest form,
and the threads decoding runs with."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from export_support import CHUNK_LINES, DATA, export, one_line, write_input

from attnviz.alignment import Alignment, json_bytes
from attnviz.export import Exporter, ExportOptions, read_jsonl
from attnviz.export.formats import SentenceGroup
from attnviz.export.formats import record as jsonl_record

LINES = CHUNK_LINES[:9]


@pytest.fixture
def nine_lines(tmp_path):
    return write_input(tmp_path / "in.txt", LINES)


def run(input_path, out, checkpoint_path, *extra):
    result = export(
        input_path, "--out", out, "--model", checkpoint_path, "--npz", "--chunk-lines", "2", *extra
    )
    assert result.exit_code == 0, result.output
    return result


# -- decoding processes -----------------------------------------------------------------------


@pytest.mark.slow
def test_workers_write_the_same_bytes_as_one_process(tmp_path, nine_lines, checkpoint_path):
    one = tmp_path / "one"
    common = ("--beam", "2", "--nbest", "2", "--figures", "svg", "--html")
    run(nine_lines, one, checkpoint_path, *common)
    two = tmp_path / "two"
    run(nine_lines, two, checkpoint_path, *common, "--workers", "2", "--figure-workers", "1")
    for name in (*DATA, "view.html"):
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    figures = sorted(p.name for p in (one / "figures").iterdir())
    assert len(figures) == 2 * (len(LINES) - 1)
    assert figures == sorted(p.name for p in (two / "figures").iterdir())
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (one, two)]
    assert manifests[0]["options"] == manifests[1]["options"]  # workers: not an output option
    assert manifests[0]["counts"] == manifests[1]["counts"]


@pytest.mark.slow
def test_workers_resume_an_interrupted_export(tmp_path, nine_lines, checkpoint_path):
    from attnviz.translator import load_model

    clean = tmp_path / "clean"
    run(nine_lines, clean, checkpoint_path)
    translator = load_model(str(checkpoint_path))
    options = ExportOptions(npz=True, chunk_lines=2, workers=2)
    out = tmp_path / "out"
    seen = []

    def stop_after_two_chunks(progress):
        seen.append(progress.done)
        if len(seen) == 2:
            raise KeyboardInterrupt

    exporter = Exporter(translator, nine_lines, out, options, on_progress=stop_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        exporter.run()
    journal = json.loads((out / ".attnviz-export.json").read_text())
    assert journal["lines_done"] == 4
    stats = Exporter(translator, nine_lines, out, options, resume=True).run()
    assert stats.resumed_from == 4 and stats.records + stats.empty == len(LINES)
    for name in DATA:
        assert (out / name).read_bytes() == (clean / name).read_bytes(), name


@pytest.mark.slow
def test_workers_report_bad_lines_in_order_and_stop_with_strict(tmp_path, checkpoint_path):
    lines = [*LINES[:3], "a\tb", *LINES[3:], "c\td"]
    path = write_input(tmp_path / "in.txt", lines)
    raw = path.read_bytes().replace(b"a\tb", b"\xff\xfe").replace(b"c\td", b"x \xc3")
    path.write_bytes(raw)
    result = run(path, tmp_path / "out", checkpoint_path, "--workers", "2")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: line 4: not UTF-8 (bad byte at offset 0)",
        f"warning: line {len(lines)}: not UTF-8 (bad byte at offset 2)",
    ]
    strict = export(
        path, "--out", tmp_path / "strict", "--model", checkpoint_path, "--chunk-lines", "2",
        "--workers", "2", "--strict",
    )  # fmt: skip
    assert strict.exit_code == 1
    assert "line 4: not UTF-8" in one_line(strict)
    assert not (tmp_path / "strict" / "manifest.json").exists()


def test_decoding_processes_need_the_cpu():
    import torch

    from attnviz.errors import UsageError
    from attnviz.export.work import DecodePool

    class OnAnAccelerator:
        checkpoint = object()
        device = torch.device("meta")
        dtype = torch.float32

    with pytest.raises(UsageError, match="on the CPU"):
        DecodePool(OnAnAccelerator(), ExportOptions(workers=2), "in.txt", [], False)


def test_figure_workers_and_decoding_workers_are_separate_options():
    options = ExportOptions(workers=3, figure_workers=1)
    assert (options.workers, options.figure_workers) == (3, 1)
    assert ExportOptions().workers == 1
    assert "workers" not in options.fingerprint() and "figure_workers" not in options.fingerprint()
    from attnviz.errors import UsageError

    with pytest.raises(UsageError, match="figure workers"):
        ExportOptions(figure_workers=0)


# -- JSON -------------------------------------------------------------------------------------

NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def test_jsonl_floats_are_shortest_float32_and_read_back_exactly(
    tmp_path, nine_lines, checkpoint_path
):
    out = tmp_path / "out"
    run(nine_lines, out, checkpoint_path, "--beam", "2", "--nbest", "2")
    data = (out / "alignments.jsonl").read_bytes()
    float32_text = re.sub(rb'"score":[-+.0-9eE]+', b"", data)  # the score is a float64
    digits = [
        len(re.sub(rb"[-.]|[eE].*", b"", number).lstrip(b"0"))
        for number in NUMBER.findall(float32_text)
    ]
    assert len(digits) > 100 and max(digits) <= 9  # float32 needs at most 9 digits
    assert b"0000000" not in float32_text  # no float64 tails such as 0.10000000149011612
    groups = list(read_jsonl(out / "alignments.jsonl"))
    with np.load(out / "attention.npz") as arrays:
        for group in groups:
            for key, alignment in group.keyed(2):
                assert np.array_equal(
                    arrays[key].view(np.uint32), alignment.weights.view(np.uint32)
                )
    for group, line in zip(groups, data.splitlines(), strict=True):
        assert json_bytes(jsonl_record(group, arrays=True)) == line


def test_every_float32_bit_pattern_class_round_trips():
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 0x7F800000, size=200_000, dtype=np.uint32)  # finite, positive
    special = [0x00000001, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x3F800000, 0x3DCCCCCD]
    values = np.concatenate([bits, np.array(special, np.uint32)]).view(np.float32)
    values = np.concatenate([values, -values])
    back = np.asarray(json.loads(json_bytes(values)), np.float32)
    assert np.array_equal(back.view(np.uint32), values.view(np.uint32))
    assert json_bytes(np.array([0.1, 1 / 3], np.float32)) == b"[0.1,0.33333334]"


def test_non_finite_cells_are_null_and_read_back_as_nan():
    weights = np.array([[np.nan, 1.0], [0.25, np.inf]], np.float32)
    alignment = Alignment(
        source="a b",
        translation="x y",
        src_tokens=["▁a", "▁b"],
        tgt_tokens=["▁x", "▁y"],
        weights=weights,
        scores=weights,
        token_logprobs=np.array([np.nan, -0.5], np.float32),
        score=-0.25,
    )
    line = json_bytes(jsonl_record(SentenceGroup(0, "a b", (alignment,)), arrays=True))
    record = json.loads(line)
    assert record["attention"] == [[None, 1.0], [0.25, None]]
    back = Alignment.from_dict(record)
    assert np.isnan(back.weights[0, 0]) and back.weights[1, 0] == np.float32(0.25)
    assert np.isnan(back.token_logprobs[0]) and back.token_logprobs[1] == np.float32(-0.5)
    assert json.loads(alignment.to_json())["scores"][1] == [0.25, None]


# -- threads ----------------------------------------------------------------------------------


def test_decoding_uses_one_thread_by_default_and_restores_torch_setting(spm_models):
    import torch
    from conftest import make_checkpoint

    from attnviz.translator import Translator, resolve_threads

    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for threads, expected in ((None, 1), (2, 2), (0, 2)):
            translator = Translator(make_checkpoint(spm_models), "cpu", threads=threads)
            real = translator._decode_batch

            def spy(*args, real=real):
                seen.append(torch.get_num_threads())
                return real(*args)

            translator._decode_batch = spy
            translator.translate(["the boy ate an apple ."])
            assert seen[-1] == expected, threads
            assert torch.get_num_threads() == 2  # restored after decoding
    finally:
        torch.set_num_threads(before)
    cpu = torch.device("cpu")
    assert resolve_threads(None, cpu, 10**9) is None  # a large model: torch's choice
    assert resolve_threads(None, torch.device("meta"), 10) is None


@pytest.mark.parametrize("value", ["-1", "x", "1025", "100000"])
def test_bad_threads_is_one_line(tmp_path, nine_lines, checkpoint_path, value):
    result = export(
        nine_lines, "--out", tmp_path / "o", "--model", checkpoint_path, "--threads", value
    )
    assert result.exit_code == 2
    assert "threads" in one_line(result)


def reference_links(alignment):
    """The rule written out: per real target token, the argmax over the real source tokens."""
    specials = {"</s>", "<s>", "<pad>"}
    src_real = [i for i, tok in enumerate(alignment.src_tokens) if tok not in specials]
    tgt_real = [j for j, tok in enumerate(alignment.tgt_tokens) if tok not in specials]
    if not src_real:
        return []
    links = []
    for n, j in enumerate(tgt_real):
        row = [alignment.weights[j, i] for i in src_real]
        links.append((int(np.argmax(row)), n))
    return links


def test_hard_links_and_pharaoh_follow_the_rule_for_any_special_tokens():
    rng = np.random.default_rng(8)
    words = ["▁a", "b", "▁c", "</s>", "<s>", "<pad>", "<unk>"]
    checked = 0
    for _ in range(300):
        src = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(0, 7)))]
        tgt = [words[k] for k in rng.integers(0, len(words), size=int(rng.integers(0, 7)))]
        weights = rng.random((len(tgt), len(src))).astype(np.float32)
        weights[weights > 0.8] = 0.8  # ties: the first wins
        alignment = Alignment(
            source="s", translation="t", src_tokens=src, tgt_tokens=tgt, weights=weights,
            scores=weights, token_logprobs=np.zeros(len(tgt), np.float32), score=0.0,
        )  # fmt: skip
        expected = reference_links(alignment)
        assert alignment.hard_links() == expected
        assert alignment.pharaoh() == " ".join(f"{i}-{j}" for i, j in sorted(expected))
        checked += bool(expected)
    assert checked > 100
