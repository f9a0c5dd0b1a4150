"""JoeyNMT models: detection, mapping, refusals, and outputs equal to JoeyNMT's own.

The fixtures under tests/peers/joeynmt/ are five tiny models trained by JoeyNMT 2.3.0 and the
toolkit's own outputs for them (tests/peers/joeynmt/regenerate.py): teacher-forced attention
and log-probabilities computed by its modules in float64, its greedy translations with their
attention, its beam-5 5-best lists, and its subword segmentation. JoeyNMT is not needed here.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from attnviz.checkpoint import build_model, load_checkpoint, save_checkpoint
from attnviz.errors import CheckpointError, TokenizerError
from attnviz.importers import IMPORTERS, find_importer, joeynmt
from attnviz.translator import Translator

FIXTURES = Path(__file__).resolve().parent / "peers" / "joeynmt"
MODELS = sorted(p.name for p in FIXTURES.iterdir() if (p / "config.yaml").is_file())
TOLERANCE = 1e-5  # against JoeyNMT's numbers, as attnviz reports them
EXACT = 1e-9  # the network itself in float64 against JoeyNMT's modules in float64


@functools.cache
def reference(name: str) -> dict:
    with gzip.open(FIXTURES / "reference" / f"{name}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


@functools.cache
def imported(name: str):
    return joeynmt.load(FIXTURES / name)


@functools.cache
def translator(name: str, precision: str = "float64") -> Translator:
    return Translator(imported(name), "cpu", precision)


def config_of(name: str) -> dict:
    return yaml.safe_load((FIXTURES / name / "config.yaml").read_text("utf-8"))


def real_hypotheses(nbest: list[dict]) -> list[dict]:
    """JoeyNMT pads a short n-best list with '<unk>' scored -1; those are not hypotheses."""
    return [h for h in nbest if not (h["tgt_tokens"] == ["<unk>"] and h.get("score", -1) == -1)]


@pytest.fixture(params=MODELS)
def name(request) -> str:
    return request.param


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is fastest, and fair to a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shown_as_ids(tokens: list[str]) -> list[str]:
    """Tokens as JoeyNMT lists them: an unknown piece is plain <unk>, whatever its joiner."""
    return ["<unk>" if t in ("<unk>@@", "\u2581<unk>") else t for t in tokens]


# -- the fixtures cover what they should -------------------------------------------------


def test_fixtures_cover_the_recurrent_options():
    decoders = [config_of(n)["model"]["decoder"] for n in MODELS]
    levels = {
        config_of(n)["data"]["src"].get("tokenizer_type", "word")
        if config_of(n)["data"]["src"]["level"] == "bpe"
        else "word"
        for n in MODELS
    }
    assert len(MODELS) == 5
    assert {d["attention"] for d in decoders} == {"bahdanau", "luong"}
    assert {d["rnn_type"] for d in decoders} == {"gru", "lstm"}
    assert {d["init_hidden"] for d in decoders} == {"bridge", "last", "zero"}
    assert {d["input_feeding"] for d in decoders} == {True, False}
    assert max(d["num_layers"] for d in decoders) == 2
    assert levels == {"word", "subword-nmt", "sentencepiece"}


def test_references_hold_enough_sentences(name):
    ref = reference(name)
    assert len(ref["teacher_forced"]) == 50
    assert len(ref["greedy"]) == len(ref["beam5"]) == 200
    assert ref["toolkit"] == "joeynmt" and ref["version"] == "2.3.0"


def test_beam_search_is_not_just_greedy_in_the_references():
    differing = sum(
        g["tgt_tokens"] != b["nbest"][0]["tgt_tokens"]
        for n in MODELS
        for g, b in zip(reference(n)["greedy"], reference(n)["beam5"], strict=True)
    )
    short_lists = sum(
        len(real_hypotheses(b["nbest"])) < 5 for n in MODELS for b in reference(n)["beam5"]
    )
    assert differing > 0 and short_lists > 0


# -- numbers and translations equal to JoeyNMT's -----------------------------------------


def test_network_matches_joeynmt_modules_in_float64(name):
    checkpoint = imported(name)
    model = build_model(checkpoint).double()
    source_tokenizer, target_tokenizer = checkpoint.tokenizers()
    config = checkpoint.config
    compared = 0
    for item in reference(name)["teacher_forced"]:
        src = [*source_tokenizer.encode(item["source"]), config.eos_id]
        tgt = [*target_tokenizer.encode(item["target"]), config.eos_id]
        assert [source_tokenizer.id_to_piece(i) for i in src] == item["src_tokens"]
        assert [target_tokenizer.id_to_piece(i) for i in tgt] == item["tgt_tokens"]
        with torch.no_grad():
            logits, weights = model(
                torch.tensor([src]),
                torch.tensor([len(src)]),
                torch.tensor([[config.bos_id, *tgt[:-1]]]),
            )
        logprobs = torch.log_softmax(logits[0], dim=-1)[torch.arange(len(tgt)), tgt]
        np.testing.assert_allclose(
            weights[0, :, 0, 0].numpy(), item["attention"], rtol=0, atol=EXACT
        )
        np.testing.assert_allclose(logprobs.numpy(), item["token_logprobs"], rtol=0, atol=EXACT)
        compared += 1
    assert compared == 50


def test_forced_decoding_matches_joeynmt(name):
    items = reference(name)["teacher_forced"]
    alignments = translator(name).translate(
        [i["source"] for i in items], refs=[i["target"] for i in items]
    )
    assert len(alignments) == len(items) == 50
    for alignment, item in zip(alignments, items, strict=True):
        assert shown_as_ids(alignment.src_tokens) == item["src_tokens"]
        assert alignment.tgt_tokens == item["tgt_tokens"]
        np.testing.assert_allclose(alignment.weights, item["attention"], rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(
            alignment.token_logprobs, item["token_logprobs"], rtol=0, atol=TOLERANCE
        )


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_greedy_matches_joeynmt(name, precision):
    ref = reference(name)
    items = ref["greedy"]
    alignments = translator(name, precision).translate([i["source"] for i in items])
    assert len(alignments) == len(items) == 200
    for alignment, item, item32 in zip(alignments, items, ref["greedy_float32"], strict=True):
        assert alignment.tgt_tokens == item["tgt_tokens"] == item32["tgt_tokens"]
        assert alignment.translation == item["translation"] == item32["translation"]
        if precision == "float64":
            np.testing.assert_allclose(alignment.weights, item["attention"], rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(
                alignment.token_logprobs, item["token_logprobs"], rtol=0, atol=TOLERANCE
            )


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_beam5_nbest_matches_joeynmt(name, precision):
    ref = reference(name)
    items = ref["beam5"]
    groups = translator(name, precision).translate_grouped(
        [i["source"] for i in items], beam=5, nbest=5
    )
    assert len(groups) == 200
    for group, item, item32 in zip(groups, items, ref["beam5_float32"], strict=True):
        expected = real_hypotheses(item["nbest"])
        assert [(a.tgt_tokens, a.translation) for a in group] == [
            (h["tgt_tokens"], h["translation"]) for h in expected
        ]
        assert [a.tgt_tokens for a in group] == [
            h["tgt_tokens"] for h in real_hypotheses(item32["nbest"])
        ]
        assert [a.rank for a in group] == list(range(len(expected)))
        if precision == "float64":
            np.testing.assert_allclose(
                [a.score for a in group], [h["score"] for h in expected], rtol=0, atol=TOLERANCE
            )
        for alignment in group:
            np.testing.assert_allclose(alignment.weights.sum(axis=1), 1.0, atol=1e-5)


def test_segmentation_matches_joeynmt(name):
    source, target = imported(name).tokenizers()
    for side, tokenizer in (("src", source), ("trg", target)):
        items = reference(name)["segmentation"][side]
        assert len(items) == 300
        assert [tokenizer.split(i["text"]) for i in items] == [i["pieces"] for i in items]


# -- detection and the importer registry -------------------------------------------------


def copy_fixture(tmp_path: Path, name: str = "gru-luong-bpe") -> Path:
    return Path(shutil.copytree(FIXTURES / name, tmp_path / name))


def test_registry_lists_the_joeynmt_importer():
    assert joeynmt in IMPORTERS
    assert joeynmt.TOOLKIT == "joeynmt"


@pytest.mark.parametrize("form", ["folder", "config", "checkpoint"])
def test_each_file_form_is_detected_and_loads_the_same_model(form):
    folder = FIXTURES / "gru-luong-bpe"
    path = {"folder": folder, "config": folder / "config.yaml", "checkpoint": folder / "best.ckpt"}
    importer = find_importer(path[form])
    assert importer is joeynmt
    loaded = importer.load(path[form])
    base = imported("gru-luong-bpe")
    assert loaded.config == base.config
    assert loaded.state_dict.keys() == base.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], base.state_dict[k]) for k in base.state_dict)
    assert loaded.src_tokenizer == base.src_tokenizer and loaded.search == base.search


def test_detection_reads_content_not_names(tmp_path):
    folder = copy_fixture(tmp_path)
    (folder / "config.yaml").rename(folder / "my settings.yml")
    (folder / "best.ckpt").rename(folder / "weights.bin")
    assert joeynmt.detect(folder / "weights.bin")
    assert joeynmt.detect(folder / "my settings.yml")
    assert joeynmt.load(folder / "weights.bin").config == imported("gru-luong-bpe").config


def test_foreign_files_are_not_detected(tmp_path, checkpoint_path):
    import torch as t

    folder_without_checkpoint = copy_fixture(tmp_path, "lstm-luong-last")
    (folder_without_checkpoint / "best.ckpt").unlink()
    other_yaml = tmp_path / "other.yaml"
    other_yaml.write_text("model: {name: x}\ndata: [1, 2]\n", "utf-8")
    random_bytes = tmp_path / "random.ckpt"
    random_bytes.write_bytes(bytes(range(256)) * 10)
    opennmt_like = tmp_path / "onmt.pt"
    t.save({"model": {}, "generator": {}, "vocab": {}, "opt": {}}, opennmt_like)
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("model: [unclosed\n", "utf-8")
    for path in (
        checkpoint_path,
        folder_without_checkpoint,
        folder_without_checkpoint / "config.yaml",
        other_yaml,
        bad_yaml,
        random_bytes,
        opennmt_like,
        tmp_path / "missing",
        tmp_path,
    ):
        assert not joeynmt.detect(path), path
        assert find_importer(path) is None, path


def test_origin_records_toolkit_files_and_mapping():
    origin = imported("gru-luong-bpe").metadata["origin"]
    assert origin["toolkit"] == "joeynmt" and origin["version"] == "2.3.0"
    folder = FIXTURES / "gru-luong-bpe"
    expected = {
        "config.yaml",
        "best.ckpt",
        "src_vocab.txt",
        "trg_vocab.txt",
        "src.codes",
        "trg.codes",
    }
    assert set(origin["files"]) == expected
    for file, digest in origin["files"].items():
        assert digest == hashlib.sha256((folder / file).read_bytes()).hexdigest()
    mapping = "\n".join(origin["mapping"])
    assert (
        "luong -> general" in mapping
        and "init_hidden: bridge -> decoder_init shared_tanh_bridge" in mapping
    )
    assert "tied_softmax" in mapping and "at most 30 tokens" in mapping


def test_converted_checkpoint_needs_no_original_files(tmp_path):
    folder = copy_fixture(tmp_path)
    target = tmp_path / "converted.pt"
    save_checkpoint(joeynmt.load(folder), target)
    shutil.rmtree(folder)
    converted = load_checkpoint(target)
    assert converted.metadata["origin"]["toolkit"] == "joeynmt"
    sentences = [i["source"] for i in reference("gru-luong-bpe")["greedy"][:20]]
    again = Translator(converted, "cpu", "float64").translate(sentences, beam=5, nbest=3)
    assert again == translator("gru-luong-bpe").translate(sentences, beam=5, nbest=3)


# -- refusals ----------------------------------------------------------------------------


def _edit(folder: Path, change) -> None:
    path = folder / "config.yaml"
    config = yaml.safe_load(path.read_text("utf-8"))
    change(config)
    path.write_text(yaml.safe_dump(config), "utf-8")


REFUSALS = [
    (
        lambda c: c["model"]["encoder"].update(type="transformer"),
        "model.encoder.type 'transformer'",
    ),
    (lambda c: c["model"]["decoder"].pop("type"), "model.decoder.type 'transformer'"),
    (lambda c: c["model"]["encoder"].update(bidirectional=False), "model.encoder.bidirectional"),
    (lambda c: c["model"]["decoder"].update(rnn_type="lstm"), "rnn_type differ"),
    (lambda c: c["model"]["decoder"].update(activation="relu"), "model.decoder.activation 'relu'"),
    (lambda c: c["model"]["decoder"].update(attention="multihead"), "attention 'multihead'"),
    (lambda c: c["data"]["src"].update(level="char"), "data.src.level 'char'"),
    (
        lambda c: c["data"]["trg"]["tokenizer_cfg"].update(pretokenizer="moses"),
        "data.trg.tokenizer_cfg.pretokenizer 'moses'",
    ),
    (lambda c: c["data"]["src"]["tokenizer_cfg"].update(separator="##"), "separator '##'"),
    (lambda c: c["data"].update(special_symbols={"sep_token": "<sep>"}), "sep_token"),
    (lambda c: c["data"].update(src="de"), "JoeyNMT 1 configs are not supported"),
    (lambda c: c["testing"].update(max_output_length=0), "testing.max_output_length 0"),
]


@pytest.mark.parametrize(("change", "expected"), REFUSALS)
def test_unsupported_options_are_refused_in_one_line(tmp_path, change, expected):
    folder = copy_fixture(tmp_path)
    _edit(folder, change)
    with pytest.raises(CheckpointError) as err:
        joeynmt.load(folder)
    message = str(err.value)
    assert expected in message and "\n" not in message


def test_unmappable_parameter_is_named(tmp_path):
    folder = copy_fixture(tmp_path)
    payload = torch.load(folder / "best.ckpt", weights_only=True)
    payload["model_state"]["decoder.coverage.weight"] = torch.zeros(3)
    torch.save(payload, folder / "best.ckpt")
    with pytest.raises(CheckpointError, match=r"cannot map: decoder\.coverage\.weight"):
        joeynmt.load(folder)


def test_missing_files_are_named(tmp_path):
    folder = copy_fixture(tmp_path)
    (folder / "src.codes").unlink()
    with pytest.raises(CheckpointError, match=r"tokenizer_cfg.codes 'data/src.codes' not found"):
        joeynmt.load(folder)
    (folder / "src_vocab.txt").unlink()
    with pytest.raises(CheckpointError, match=r"data\.src\.voc_file is missing"):
        joeynmt.load(folder)


def test_not_a_joeynmt_model(tmp_path):
    with pytest.raises(CheckpointError, match="not a JoeyNMT model"):
        joeynmt.load(tmp_path)


def test_checkpoint_is_read_without_unpickling_code(tmp_path, monkeypatch):
    seen = []
    original = torch.load

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    joeynmt.load(copy_fixture(tmp_path))
    assert seen == [True]


# -- tokenizers and words ----------------------------------------------------------------


def test_unknown_words_are_shown_as_unk():
    t = translator("gru-bahdanau-bridge")
    alignment = t.translate("noka kamire velo")[0]
    assert alignment.src_tokens == ["noka", "<unk>", "velo", "</s>"]
    assert alignment.to_words().src_tokens == ["noka", "<unk>", "velo", "</s>"]


def test_bpe_words_merge_joined_pieces():
    t = translator("gru-luong-bpe")
    source = "noka sanopi velo dutu"
    pieces = t.translate(source)[0]
    assert len(pieces.src_tokens) > 5 and any(t.endswith("@@") for t in pieces.src_tokens)
    words = t.translate(source, words=True)[0]
    assert words.src_tokens == [*source.split(), "</s>"]
    assert words.tgt_tokens == [*pieces.translation.split(), "</s>"]
    np.testing.assert_allclose(words.weights.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(words.weights[:, 1], pieces.to_words().weights[:, 1])
    assert words.word_rules == ("bpe", "bpe")


def test_unknown_bpe_piece_stays_inside_its_word():
    t = translator("gru-luong-bpe")
    alignment = t.translate("noka kamire velo")[0]
    assert alignment.src_tokens[:3] == ["noka", "<unk>@@", "a@@"]
    assert alignment.to_words().src_tokens == ["noka", "<unk>amire", "velo", "</s>"]


def test_sentencepiece_words_merge_pieces():
    t = translator("gru-bahdanau-spm")
    pieces = t.translate("nemo dumire sanopi")[0]
    assert pieces.src_tokens[:6] == ["\u2581nemo", "\u2581", "du", "mi", "re", "\u2581"]
    words = pieces.to_words()
    assert words.src_tokens[:2] == ["nemo", "dumire"] and words.src_tokens[3] == "</s>"
    assert words.src_tokens[2].startswith("sa") and words.src_tokens[2].endswith("pi")
    assert words.word_rules == ("sentencepiece", "sentencepiece")


def test_tokenizer_specs_round_trip():
    from attnviz.tokenizer import tokenizer_from_spec

    for name in ("gru-bahdanau-bridge", "gru-luong-bpe", "gru-bahdanau-spm"):
        for spec in (imported(name).src_tokenizer, imported(name).tgt_tokenizer):
            tokenizer = tokenizer_from_spec(spec)
            assert tokenizer.to_spec() == spec
            text = "noka kamire velo"
            assert tokenizer_from_spec(tokenizer.to_spec()).encode(text) == tokenizer.encode(text)


def test_vocabulary_tokenizer_lowercase_normalize_and_specials():
    from attnviz.tokenizer import VocabularyTokenizer

    tokens = ["<unk>", "<pad>", "<s>", "</s>", "the", "cat", "cat?"]
    tokenizer = VocabularyTokenizer(
        tokens, unk_id=0, specials=[1, 2, 3], lowercase=True, normalize=True
    )
    # NFKC folds the full-width letter; spaces collapse and none stays before "?"
    assert tokenizer.encode("The  \uff23at ?") == [4, 6]
    assert tokenizer.encode("the dog") == [4, 0]
    assert tokenizer.pieces("the dog") == ["the", "<unk>"]
    assert tokenizer.decode([2, 4, 0, 5, 3]) == "the <unk> cat"
    assert tokenizer.id_to_piece(0) == "<unk>" and tokenizer.piece_to_id("dog") == 0
    plain = VocabularyTokenizer(tokens, unk_id=0)
    assert plain.encode("The cat") == [0, 5]
    with pytest.raises(TokenizerError, match="unk_id must be an id below 7"):
        VocabularyTokenizer(tokens, unk_id=9)


def test_bpe_without_subword_nmt_is_one_clear_line(monkeypatch):
    import sys

    from attnviz.tokenizer import tokenizer_from_spec

    monkeypatch.setitem(sys.modules, "subword_nmt.apply_bpe", None)
    with pytest.raises(TokenizerError, match=r"pip install 'attnviz\[bpe\]'"):
        tokenizer_from_spec(imported("gru-luong-bpe").src_tokenizer)


def test_restricted_sentencepiece_rejects_damaged_models():
    from attnviz.tokenizer import restrict_sentencepiece

    with pytest.raises(TokenizerError, match="damaged"):
        restrict_sentencepiece(b"\x0a\xff\xff\xff", ["a"])


def test_sentencepiece_models_can_be_given_for_pre_segmented_training_data(tmp_path):
    """A word-level model trained on text segmented outside JoeyNMT, given its SentencePiece
    models, translates as the SentencePiece-level model does."""
    folder = copy_fixture(tmp_path, "gru-bahdanau-spm")
    spm = {side: tmp_path / f"{side}.model" for side in ("src", "trg")}
    for side, path in spm.items():
        shutil.move(folder / f"{side}.model", path)

    def word_level(config):
        for side in ("src", "trg"):
            config["data"][side] = {"lang": side, "level": "word"}

    _edit(folder, word_level)
    checkpoint = joeynmt.load(folder, src_spm=spm["src"], tgt_spm=spm["trg"])
    assert checkpoint.src_tokenizer["kind"] == "sentencepiece_vocabulary"
    assert set(checkpoint.metadata["origin"]["files"]) >= {"src.model", "trg.model"}
    items = reference("gru-bahdanau-spm")["greedy"][:40]
    alignments = Translator(checkpoint, "cpu", "float64").translate([i["source"] for i in items])
    assert [a.translation for a in alignments] == [i["translation"] for i in items]
    assert [a.tgt_tokens for a in alignments] == [i["tgt_tokens"] for i in items]
    as_bytes = joeynmt.load(folder, src_spm=spm["src"].read_bytes(), tgt_spm=str(spm["trg"]))
    assert as_bytes.src_tokenizer == checkpoint.src_tokenizer
    assert "src SentencePiece model" in as_bytes.metadata["origin"]["files"]
    with pytest.raises(CheckpointError, match="subword-nmt BPE; a SentencePiece model"):
        joeynmt.load(FIXTURES / "gru-luong-bpe", src_spm=spm["src"])


@pytest.mark.parametrize("model", ["gru-bahdanau-bridge", "lstm-bahdanau-zero-2layer"])
def test_every_nbest_hypothesis_carries_its_own_attention(model):
    """Forcing a beam hypothesis's tokens reproduces the attention and log-probs it came with."""
    from attnviz.decoding import forced_decode
    from attnviz.families.base import pad_batch

    t = translator(model)
    config = t.config
    target_ids = {token: i for i, token in enumerate(t.checkpoint.tgt_tokenizer["tokens"])}
    sources = [i["source"] for i in reference(model)["beam5"][:30]]
    groups = t.translate_grouped(sources, beam=5, nbest=5)
    compared = 0
    for source, group in zip(sources, groups, strict=True):
        ids = t.encode_source(source)
        src, lengths = pad_batch([ids], config.pad_id)
        for hyp in group:
            body = [target_ids[token] for token in hyp.tgt_tokens if token != "</s>"]
            forced = forced_decode(t.model, src, lengths, [body])[0][0]
            rows = len(hyp.tgt_tokens)
            np.testing.assert_allclose(forced.weights[:rows, 0, 0], hyp.weights, rtol=0, atol=1e-6)
            np.testing.assert_allclose(
                forced.token_logprobs[:rows], hyp.token_logprobs, rtol=0, atol=1e-5
            )
            compared += 1
    assert compared > 100 and any(len(group) == 5 for group in groups)


# -- everything downstream works on imported models --------------------------------------


def test_export_of_an_imported_model_round_trips(tmp_path):
    """JSONL, Pharaoh and NPZ of a BPE model's 5-best with --words: read back, they are the
    translator's own alignments, word rules included."""
    from attnviz.export import Exporter, ExportOptions, read_jsonl, read_npz, read_pharaoh
    from attnviz.options import DecodeOptions

    t = translator("gru-luong-bpe")
    sentences = [i["source"] for i in reference("gru-luong-bpe")["greedy"][:12]]
    source = tmp_path / "input.txt"
    source.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    decode = DecodeOptions(beam=5, nbest=2, words=True)
    stats = Exporter(t, source, tmp_path / "out", ExportOptions(decode=decode, npz=True)).run()
    assert stats.lines == 12
    expected = t.translate_grouped(sentences, options=decode)
    groups = list(read_jsonl(tmp_path / "out" / "alignments.jsonl"))
    assert [list(g.alignments) for g in groups] == expected
    assert all(a.word_rules == ("bpe", "bpe") and a.level == "words" for a in groups[0].alignments)
    # one word per source word, unknown pieces (shown as <unk>) inside theirs
    assert [len(g.best.src_tokens) - 1 for g in groups] == [len(s.split()) for s in sentences]
    assert any("<unk>" in w for g in groups for w in g.best.src_tokens)
    pharaoh = list(read_pharaoh(tmp_path / "out" / "alignments.pharaoh"))
    assert pharaoh == [sorted(group[0].hard_links()) for group in expected]
    arrays = dict(read_npz(tmp_path / "out" / "attention.npz"))
    np.testing.assert_array_equal(arrays["3-1"], expected[3][1].weights)


def test_heatmap_and_terminal_table_of_an_imported_model(tmp_path):
    import io as text_io

    from rich.console import Console

    from attnviz.render.figure import render_figure
    from attnviz.render.terminal import render_text

    t = translator("gru-bahdanau-spm")
    group = t.translate("nemo dumire sanopi velo", beam=5, nbest=2, words=True)
    path = render_figure(group[1], tmp_path / "nbest-2.png", values=True)
    assert path.read_bytes()[:4] == b"\x89PNG"
    console = Console(file=text_io.StringIO(), width=120, color_system=None)
    render_text(group, console)
    shown = console.file.getvalue()
    assert group[0].translation in shown and group[1].translation in shown
    assert "dumire" in shown and "#2" in shown


def test_readme_joeynmt_commands_name_models_the_importer_reads():
    import re

    readme = (FIXTURES.parent.parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### JoeyNMT", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S).group(1)
    root = FIXTURES.parent.parent.parent
    paths = re.findall(r"(tests/peers/joeynmt/\S+)", block)
    assert len(paths) >= 5
    forms = set()
    for path in paths:
        target = root / path
        assert find_importer(target) is joeynmt, path
        forms.add("folder" if target.is_dir() else target.suffix)
    assert forms == {"folder", ".yaml", ".ckpt"}
