"""OpenNMT-py checkpoints: attention, log-probs and translations equal to OpenNMT-py's own.

The reference numbers in tests/peers/opennmt_py were computed by OpenNMT-py 3.5.1 itself
(regenerate.py); these tests need no OpenNMT-py installation.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from attnviz.checkpoint import build_model
from attnviz.decoding import SearchRules, beam_decode, forced_decode, greedy_decode
from attnviz.errors import CheckpointError, MissingModelFile
from attnviz.importers import find_importer, opennmt_py
from attnviz.tokenizer import tokenizer_from_spec

FIXTURES = Path(__file__).parent / "peers" / "opennmt_py"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.pt"))
TOLERANCE = 1e-5
SOURCES = (FIXTURES / "test.src").read_text("utf-8").split("\n")[:-1]


def test_every_fixture_model_is_there():
    assert len(MODELS) == 6
    assert len(SOURCES) == 250


class Imported:
    """An imported fixture model with its tokenizers and OpenNMT-py's reference outputs."""

    def __init__(self, name: str, dtype: torch.dtype = torch.float64) -> None:
        path = FIXTURES / f"{name}.pt"
        reference = json.loads(path.with_suffix(".json").read_text("utf-8"))
        spm = reference["spm"] or {}
        self.checkpoint = opennmt_py.load(
            path,
            src_spm=FIXTURES / spm["src"] if spm else None,
            tgt_spm=FIXTURES / spm["tgt"] if spm else None,
        )
        self.model = build_model(self.checkpoint).to(dtype)
        self.src, self.tgt = self.checkpoint.tokenizers()
        self.rules = self.checkpoint.rules()
        self.reference = reference
        with np.load(path.with_suffix(".npz")) as arrays:
            self.arrays = dict(arrays)

    def decode_all(self, search, sources: list[str], **options) -> list:
        """Hypotheses of every source, decoded in padded batches of 64."""
        results = []
        for start in range(0, len(sources), 64):
            ids = [self.src.encode(text) for text in sources[start : start + 64]]
            lengths = torch.tensor([len(i) for i in ids])
            src = torch.full((len(ids), int(lengths.max())), self.model.config.pad_id)
            for row, sentence in enumerate(ids):
                src[row, : len(sentence)] = torch.tensor(sentence)
            results += search(self.model, src, lengths, rules=self.rules, **options)
        return results

    def text(self, tokens: list[int]) -> str:
        return self.tgt.decode([t for t in tokens if t != self.model.config.eos_id])


@cache
def imported(name: str, dtype: torch.dtype = torch.float64) -> Imported:
    return Imported(name, dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", MODELS)
def test_teacher_forced_attention_and_logprobs_match(name, dtype):
    model = imported(name, dtype)
    forced = model.reference["teacher_forced"]
    pairs = list(zip(forced["src_tokens"], forced["tgt_tokens"], strict=True))
    assert len(pairs) == 50
    src_ids = [[model.src.piece_to_id(t) for t in src] for src, _ in pairs]
    tgt_ids = [[model.tgt.piece_to_id(t) for t in tgt] for _, tgt in pairs]
    lengths = torch.tensor([len(ids) for ids in src_ids])
    src = torch.full((len(pairs), int(lengths.max())), model.model.config.pad_id)
    for row, ids in enumerate(src_ids):
        src[row, : len(ids)] = torch.tensor(ids)
    hyps = forced_decode(model.model, src, lengths, tgt_ids, rules=model.rules)
    worst_attention = worst_logprob = 0.0
    for i, (hyp,) in enumerate(hyps):
        attention = model.arrays[f"tf/{i}/attention"]
        logprobs = model.arrays[f"tf/{i}/logprobs"]
        weights = hyp.weights[:, 0, 0]  # [T, L, H, S] -> [T, S]
        assert weights.shape == attention.shape == (len(tgt_ids[i]) + 1, len(src_ids[i]))
        worst_attention = max(worst_attention, float(np.abs(weights - attention).max()))
        worst_logprob = max(worst_logprob, float(np.abs(hyp.token_logprobs - logprobs).max()))
    assert worst_attention <= TOLERANCE
    assert worst_logprob <= TOLERANCE


@pytest.mark.parametrize("name", MODELS)
def test_tokenizer_gives_the_toolkits_tokens(name):
    model = imported(name)
    forced = model.reference["teacher_forced"]
    targets = (FIXTURES / "test.tgt").read_text("utf-8").split("\n")
    for i, (src_tokens, tgt_tokens) in enumerate(
        zip(forced["src_tokens"], forced["tgt_tokens"], strict=True)
    ):
        assert model.src.split(SOURCES[i]) == src_tokens
        assert model.tgt.split(targets[i]) == tgt_tokens
        assert model.src.encode(SOURCES[i]) == [model.src.piece_to_id(t) for t in src_tokens]


@pytest.mark.parametrize("name", MODELS)
def test_greedy_translations_identical(name):
    model = imported(name)
    hyps = [h for (h,) in model.decode_all(greedy_decode, SOURCES)]
    texts, scores = [model.text(h.tokens) for h in hyps], [h.score for h in hyps]
    assert texts == model.reference["greedy"]
    np.testing.assert_allclose(scores, model.reference["greedy_scores"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_beam_translations_identical(name):
    model = imported(name)
    hyps = [h for (h,) in model.decode_all(beam_decode, SOURCES, beam_size=5)]
    texts, scores = [model.text(h.tokens) for h in hyps], [h.score for h in hyps]
    assert texts == model.reference["beam"]
    np.testing.assert_allclose(scores, model.reference["beam_scores"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", MODELS)
def test_nbest_lists_identical(name):
    model = imported(name)
    groups = model.decode_all(beam_decode, SOURCES[:100], beam_size=5, nbest=5)
    lists = [[model.text(h.tokens) for h in hyps] for hyps in groups]
    scores = [[h.score for h in hyps] for hyps in groups]
    assert len(lists) == len(model.reference["nbest"]) == 100
    reordered = 0
    for ours, theirs, our_scores, their_scores in zip(
        lists, model.reference["nbest"], scores, model.reference["nbest_scores"], strict=True
    ):
        assert sorted(ours) == sorted(theirs)
        np.testing.assert_allclose(our_scores, their_scores, atol=TOLERANCE, rtol=0)
        for rank, text in enumerate(ours):
            if text != theirs[rank]:
                # OpenNMT-py ranks float32 ties by the order they ended in; attnviz's float64
                # scores split such ties, so only hypotheses whose scores tie may swap
                tied = [
                    t
                    for t, s in zip(theirs, their_scores, strict=True)
                    if abs(s - their_scores[rank]) < 1e-6
                ]
                assert text in tied, (ours, theirs, their_scores)
                reordered += 1
    assert reordered <= 2


@pytest.mark.parametrize("name", MODELS)
def test_search_attention_matches(name):
    model = imported(name)
    compared = 0
    greedy_hyps = model.decode_all(greedy_decode, SOURCES[:20])
    beam_hyps = model.decode_all(beam_decode, SOURCES[:20], beam_size=5)
    nbest_hyps = model.decode_all(beam_decode, SOURCES[:10], beam_size=5, nbest=5)
    pairs = []
    for i, ((greedy,), (best,)) in enumerate(zip(greedy_hyps, beam_hyps, strict=True)):
        pairs += [(greedy, f"greedy/{i}"), (best, f"beam/{i}")]
    for i, nbest in enumerate(nbest_hyps):
        assert len(nbest) == 5
        pairs += [(hyp, f"nbest/{i}/{rank}") for rank, hyp in enumerate(nbest)]
    for hyp, key in pairs:
        expected = model.arrays[key]
        assert hyp.weights.shape == (*expected.shape[:1], 1, 1, *expected.shape[1:]), key
        assert np.abs(hyp.weights[:, 0, 0] - expected).max() <= TOLERANCE, key
        compared += 1
    assert compared == 20 * 2 + 10 * 5


# -- detection --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODELS)
def test_fixtures_are_detected(name):
    assert find_importer(FIXTURES / f"{name}.pt") is opennmt_py


def test_other_files_are_not_detected(tmp_path, checkpoint_path):
    (tmp_path / "text.pt").write_text("not a model", "utf-8")
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"model": {}, "generator": {}, "vocab": {}}, tmp_path / "no-opt.pt")
    candidates = [
        checkpoint_path,
        tmp_path / "text.pt",
        tmp_path / "empty.pt",
        tmp_path / "no-opt.pt",
        tmp_path / "missing.pt",
        tmp_path,
        FIXTURES / "test.src",
    ]
    for candidate in candidates:
        assert opennmt_py.detect(candidate) is False, candidate


def test_detection_reads_the_legacy_torch_format(tmp_path):
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        payload = torch.load(FIXTURES / "dot-gru-rnn-nofeed.pt", weights_only=True)
    legacy = tmp_path / "legacy.pt"
    torch.save(payload, legacy, _use_new_zipfile_serialization=False)
    assert opennmt_py.detect(legacy)
    assert opennmt_py.load(legacy).config.attention == "dot"


# -- refusals ---------------------------------------------------------------------------------


def _payload(name: str = "dot-gru-rnn-nofeed") -> dict:
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(FIXTURES / f"{name}.pt", weights_only=True)


def _rewritten(tmp_path: Path, name: str = "dot-gru-rnn-nofeed", **options) -> Path:
    payload = _payload(name)
    for key, value in options.items():
        setattr(payload["opt"], key, value)
    path = tmp_path / "changed.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"coverage_attn": True}, "coverage_attn"),
        ({"context_gate": "both"}, "context_gate both"),
        ({"copy_attn": True}, "copy_attn"),
        ({"encoder_type": "transformer"}, "encoder_type transformer"),
        ({"decoder_type": "cnn"}, "decoder_type cnn"),
        ({"rnn_type": "SRU"}, "rnn_type SRU"),
        ({"global_attention": "none"}, "global_attention none"),
        ({"global_attention_function": "sparsemax"}, "global_attention_function sparsemax"),
        ({"position_encoding": True}, "position_encoding"),
        ({"model_task": "lm"}, "model_task lm"),
        ({"transforms": ["onmt_tokenize"]}, "the onmt_tokenize transform"),
        ({"layers": -1, "enc_layers": 2, "dec_layers": 1}, "enc_layers 2 with dec_layers 1"),
        ({"lora_layers": ["linear_values"]}, "lora_layers"),
    ],
)
def test_unrepresentable_options_are_refused_by_name(tmp_path, options, named):
    path = _rewritten(tmp_path, **options)
    assert opennmt_py.detect(path)
    with pytest.raises(CheckpointError) as caught:
        opennmt_py.load(path)
    message = str(caught.value)
    assert named in message
    assert message.endswith("is not supported")
    assert "\n" not in message


def test_unknown_weights_are_refused_by_name(tmp_path):
    payload = _payload()
    payload["model"]["decoder.attn.linear_cover.weight"] = torch.zeros(3, 1)
    path = tmp_path / "extra.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"cannot place: decoder\.attn\.linear_cover"):
        opennmt_py.load(path)


def test_torchtext_checkpoints_are_refused_with_a_way_out(tmp_path, monkeypatch):
    """1.x/2.x pickle torchtext Fields: never unpickled, one line saying what to do."""
    import argparse
    import types

    field_module = types.ModuleType("torchtext.data.field")

    class Field:
        pass

    Field.__module__ = "torchtext.data.field"
    Field.__qualname__ = "Field"
    field_module.Field = Field
    for name, module in (
        ("torchtext", types.ModuleType("torchtext")),
        ("torchtext.data", types.ModuleType("torchtext.data")),
        ("torchtext.data.field", field_module),
    ):
        monkeypatch.setitem(__import__("sys").modules, name, module)
    payload = {
        "model": {"w": torch.zeros(1)},
        "generator": {"weight": torch.zeros(1)},
        "vocab": [("src", Field()), ("tgt", Field())],
        "opt": argparse.Namespace(encoder_type="brnn"),
    }
    path = tmp_path / "v2.pt"
    torch.save(payload, path)
    monkeypatch.delitem(__import__("sys").modules, "torchtext.data.field")
    assert find_importer(path) is opennmt_py
    with pytest.raises(CheckpointError) as caught:
        opennmt_py.load(path)
    message = str(caught.value)
    assert "OpenNMT-py 1.x/2.x" in message
    assert "torchtext objects" in message
    assert "convertv2_v3.py" in message


class Stowaway:
    """A class that a checkpoint could smuggle in; loading must never build it."""


def test_other_pickled_objects_are_refused(tmp_path):
    payload = _payload()
    payload["extra"] = Stowaway()
    path = tmp_path / "object.pt"
    torch.save(payload, path)
    assert opennmt_py.detect(path)
    with pytest.raises(CheckpointError, match=r"holds a Python object \(.*Stowaway\)"):
        opennmt_py.load(path)


# -- SentencePiece models -------------------------------------------------------------------

SPM_MODEL = "mlp-gru-brnn-2layers-bridge-spm"


def test_missing_sentencepiece_model_names_the_file(tmp_path):
    path = _rewritten(
        tmp_path,
        SPM_MODEL,
        src_subword_model=str(tmp_path / "gone" / "source.model"),
        tgt_subword_model=str(tmp_path / "gone" / "target.model"),
    )
    with pytest.raises(MissingModelFile) as caught:
        opennmt_py.load(path)
    assert caught.value.argument == "src_spm"
    assert str(tmp_path / "gone" / "source.model") in str(caught.value)
    with pytest.raises(MissingModelFile) as caught:
        opennmt_py.load(path, src_spm=FIXTURES / f"{SPM_MODEL}.src.spm.model")
    assert caught.value.argument == "tgt_spm"


def test_sentencepiece_models_named_by_the_checkpoint_are_used(tmp_path):
    path = _rewritten(
        tmp_path,
        SPM_MODEL,
        src_subword_model=str(FIXTURES / f"{SPM_MODEL}.src.spm.model"),
        tgt_subword_model=str(FIXTURES / f"{SPM_MODEL}.tgt.spm.model"),
    )
    checkpoint = opennmt_py.load(path)
    source = tokenizer_from_spec(checkpoint.src_tokenizer)
    assert source.kind == "sentencepiece_vocabulary"
    assert source.split("the cat sees a zebra .")[0].startswith("▁")
    files = checkpoint.metadata["origin"]["files"]
    assert set(files) == {"changed.pt", f"{SPM_MODEL}.src.spm.model", f"{SPM_MODEL}.tgt.spm.model"}


def test_sentencepiece_model_for_a_word_model_is_refused():
    with pytest.raises(CheckpointError, match="not trained on SentencePiece pieces"):
        opennmt_py.load(
            FIXTURES / "dot-gru-rnn-nofeed.pt", src_spm=FIXTURES / f"{SPM_MODEL}.src.spm.model"
        )


# -- origin metadata ------------------------------------------------------------------------


def test_origin_records_toolkit_hash_and_mapping():
    import hashlib

    path = FIXTURES / "mlp-lstm-brnn.pt"
    origin = opennmt_py.load(path).metadata["origin"]
    assert origin["toolkit"] == "OpenNMT-py"
    assert origin["version"].startswith("3.x")
    assert origin["files"] == {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    mapping = "\n".join(origin["mapping"])
    assert "global_attention mlp -> additive attention with a bias on the query" in mapping
    assert "bridge False -> decoder_init encoder_final" in mapping
    assert "no </s> on the source" in mapping


def test_unknown_words_map_to_unk_and_show_as_such():
    model = imported("dot-gru-rnn-nofeed")
    ids = model.src.encode("the zebra sees a violin .")
    unk = model.model.config.unk_id
    assert ids[1] == unk and ids[4] == unk
    assert [model.src.id_to_piece(i) for i in ids][1] == "<unk>"
    assert ids[0] != unk and model.src.id_to_piece(ids[0]) == "the"


def test_search_rules_follow_onmt_translate_length_limits():
    rules = SearchRules(**opennmt_py.SEARCH_RULES)
    assert [rules.max_output_length(n) for n in (1, 2, 10, 196, 197, 1000)] == [
        6,
        7,
        17,
        250,
        250,
        250,
    ]
    assert SearchRules().max_output_length(10) == 30  # attnviz's own: 2 N + 10


def test_decoder_init_needs_matching_sides():
    from attnviz.errors import ConfigError
    from attnviz.families.rnn.model import RNNConfig

    base = {"src_vocab_size": 9, "tgt_vocab_size": 9, "hidden_size": 4, "bidirectional": True}
    RNNConfig(**base, decoder_hidden_size=8, decoder_init="encoder_final")
    with pytest.raises(ConfigError, match="decoder_hidden_size"):
        RNNConfig(**base, decoder_hidden_size=6, decoder_init="grouped_relu_bridge")
    with pytest.raises(ConfigError, match="as many decoder layers"):
        RNNConfig(**base, decoder_hidden_size=8, decoder_layers=2, decoder_init="encoder_final")
    with pytest.raises(
        ConfigError, match=r"valid: tanh_bridge, .*encoder_final, grouped_relu_bridge"
    ):
        RNNConfig(**base, decoder_init="zeros?")


def test_grouped_relu_bridge_reads_states_in_layer_groups():
    """Two layers, two directions: rows [l0 fwd, l0 bwd] and [l1 fwd, l1 bwd], then per layer."""
    from attnviz.families.rnn.model import Bridge, RNNConfig

    config = RNNConfig(
        src_vocab_size=9,
        tgt_vocab_size=9,
        rnn="gru",
        hidden_size=2,
        decoder_hidden_size=4,
        encoder_layers=2,
        decoder_layers=2,
        decoder_init="grouped_relu_bridge",
    )
    bridge = Bridge(config)
    torch.manual_seed(0)
    final = torch.randn(4, 3, 2)  # [layers*dirs, B, h]
    out = bridge(final)
    assert out.shape == (2, 3, 4)
    weight, bias = bridge.hidden.weight, bridge.hidden.bias
    for b in range(3):
        for layer in range(2):
            group = torch.cat([final[2 * layer, b], final[2 * layer + 1, b]])  # [L*h]
            mapped = torch.relu(weight @ group + bias)  # both directions of one layer, mixed
            torch.testing.assert_close(out[layer, b], mapped)


# -- everything else on imported models -----------------------------------------------------

WORD_MODEL = FIXTURES / "mlp-lstm-brnn.pt"
SPM_FILES = [
    "--src-spm",
    str(FIXTURES / f"{SPM_MODEL}.src.spm.model"),
    "--tgt-spm",
    str(FIXTURES / f"{SPM_MODEL}.tgt.spm.model"),
]


def _reference(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


def _cli(*args: object):
    from typer.testing import CliRunner

    from attnviz.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def _records(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_load_model_reads_opennmt_py_files_as_the_api():
    import attnviz

    translator = attnviz.load_model(WORD_MODEL, device="cpu")
    assert translator.rules == SearchRules(**opennmt_py.SEARCH_RULES)
    reference = _reference("mlp-lstm-brnn")
    alignments = translator.translate(SOURCES[:20])
    assert [a.translation for a in alignments] == reference["greedy"][:20]
    with np.load(FIXTURES / "mlp-lstm-brnn.npz") as arrays:
        for i, alignment in enumerate(alignments):
            assert alignment.tgt_tokens[-1] == "</s>"
            assert "</s>" not in alignment.src_tokens  # no source end token in OpenNMT-py
            assert np.abs(alignment.weights - arrays[f"greedy/{i}"]).max() <= TOLERANCE


def test_translate_json_greedy_beam_and_nbest_attention():
    reference = _reference("mlp-lstm-brnn")
    with np.load(FIXTURES / "mlp-lstm-brnn.npz") as arrays:
        expected = dict(arrays)
    source = SOURCES[3]
    (greedy,) = _records(_cli("translate", source, "--model", WORD_MODEL, "--json"))
    assert greedy["translation"] == reference["greedy"][3]
    assert np.abs(np.array(greedy["attention"]) - expected["greedy/3"]).max() <= TOLERANCE
    (best,) = _records(_cli("translate", source, "--model", WORD_MODEL, "--json", "--beam", "5"))
    assert best["translation"] == reference["beam"][3]
    assert np.abs(np.array(best["attention"]) - expected["beam/3"]).max() <= TOLERANCE
    nbest = _records(
        _cli("translate", source, "--model", WORD_MODEL, "--json", "--beam", "5", "--nbest", "5")
    )
    assert [r["rank"] for r in nbest] == [0, 1, 2, 3, 4]
    assert sorted(r["translation"] for r in nbest) == sorted(reference["nbest"][3])
    for record in nbest:
        rank = reference["nbest"][3].index(record["translation"])
        got = np.array(record["attention"])
        assert np.abs(got - expected[f"nbest/3/{rank}"]).max() <= TOLERANCE


def test_forced_decoding_gives_the_teacher_forced_numbers():
    targets = (FIXTURES / "test.tgt").read_text("utf-8").split("\n")
    with np.load(FIXTURES / "mlp-lstm-brnn.npz") as arrays:
        attention, logprobs = arrays["tf/11/attention"], arrays["tf/11/logprobs"]
    assert "violin" in SOURCES[11] or "zebra" in SOURCES[11]  # an unknown word on both sides
    (record,) = _records(
        _cli("translate", SOURCES[11], "--model", WORD_MODEL, "--json", "--ref", targets[11])
    )
    assert "<unk>" in record["src_tokens"] and "<unk>" in record["tgt_tokens"]
    assert np.abs(np.array(record["attention"]) - attention).max() <= TOLERANCE
    assert np.abs(np.array(record["token_logprobs"]) - logprobs).max() <= TOLERANCE


def test_words_merge_sentencepiece_pieces_and_keep_words_whole():
    pieces = _records(
        _cli("translate", SOURCES[0], "--model", FIXTURES / f"{SPM_MODEL}.pt", *SPM_FILES, "--json")
    )[0]
    words = _records(
        _cli(
            "translate",
            SOURCES[0],
            "--model",
            FIXTURES / f"{SPM_MODEL}.pt",
            *SPM_FILES,
            "--json",
            "--words",
        )
    )[0]
    assert len(pieces["src_tokens"]) > len(SOURCES[0].split())  # pieces smaller than words
    assert words["src_tokens"] == SOURCES[0].split()
    assert words["level"] == "words"
    assert np.allclose(np.array(words["attention"]).sum(axis=1), 1.0, atol=1e-6)
    plain = _records(_cli("translate", SOURCES[0], "--model", WORD_MODEL, "--json", "--words"))[0]
    assert plain["src_tokens"] == SOURCES[0].split()  # every token of a word vocabulary is a word
    assert plain["word_rules"] == ["whitespace", "whitespace"]


def test_sentencepiece_files_missing_is_one_line_naming_the_flag(tmp_path):
    moved = _rewritten(
        tmp_path,
        SPM_MODEL,
        src_subword_model=str(tmp_path / "moved" / "src.model"),
        tgt_subword_model=str(tmp_path / "moved" / "tgt.model"),
    )
    result = _cli("translate", SOURCES[0], "--model", moved)
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert "source SentencePiece model" in lines[0] and "give it with --src-spm" in lines[0]


def test_sentencepiece_files_for_an_attnviz_checkpoint_are_refused(checkpoint_path):
    result = _cli("translate", "the boy", "--model", checkpoint_path, *SPM_FILES)
    assert result.exit_code == 2
    assert "--src-spm and --tgt-spm are only for models of other toolkits" in result.stderr


def test_terminal_table_shows_the_toolkits_tokens():
    result = _cli("translate", "the zebra sees a book .", "--model", WORD_MODEL)
    assert result.exit_code == 0, result.output
    assert "<unk>" in result.stdout and "zebra" not in result.stdout  # shown as the model saw it
    for token in ("the", "sees", "book", "</s>"):
        assert token in result.stdout


def test_heatmap_of_an_imported_model(tmp_path):
    out = tmp_path / "fig.png"
    result = _cli("heatmap", SOURCES[1], "--model", WORD_MODEL, "--out", out, "--beam", "5")
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_and_resume_on_an_imported_model(tmp_path, monkeypatch):
    sys_path = str(Path(__file__).parent)
    monkeypatch.syspath_prepend(sys_path)
    from export_support import interrupt_on_call

    source = tmp_path / "in.txt"
    source.write_text("\n".join(SOURCES[:9]) + "\n", "utf-8")
    reference = _reference(SPM_MODEL)

    def run(out: Path, *extra: str):
        return _cli(
            "export",
            source,
            "--out",
            out,
            "--model",
            FIXTURES / f"{SPM_MODEL}.pt",
            *SPM_FILES,
            "--chunk-lines",
            "3",
            "--npz",
            *extra,
        )

    clean = tmp_path / "clean"
    assert run(clean).exit_code == 0
    lines = (clean / "alignments.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(line)["translation"] for line in lines] == reference["greedy"][:9]
    broken = tmp_path / "broken"
    interrupt_on_call(monkeypatch, 2)
    assert run(broken).exit_code == 130
    monkeypatch.undo()
    result = run(broken, "--resume")
    assert result.exit_code == 0, result.output
    for name in ("alignments.jsonl", "alignments.pharaoh", "attention.npz"):
        assert (broken / name).read_bytes() == (clean / name).read_bytes(), name


def test_info_names_the_toolkit_and_the_mapping(monkeypatch):
    monkeypatch.setenv("COLUMNS", "240")
    result = _cli("info", WORD_MODEL)
    assert result.exit_code == 0, result.output
    rows = [" ".join(line.replace("│", " ").split()) for line in result.stdout.splitlines()]
    for row in (
        "origin.toolkit OpenNMT-py",
        "config.decoder_init encoder_final",
        "source vocabulary 56 (vocabulary)",
        "origin.mapping global_attention mlp -> additive attention with a bias on the query "
        "projection; attentional layer with bias, no tanh",
    ):
        assert row in rows, (row, rows)


def test_convert_writes_a_self_describing_checkpoint(tmp_path):
    import hashlib

    from attnviz.checkpoint import load_checkpoint

    out = tmp_path / "converted.pt"
    result = _cli("convert", FIXTURES / f"{SPM_MODEL}.pt", "--out", out, *SPM_FILES)
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (from OpenNMT-py)" in " ".join(result.stderr.split())
    checkpoint = load_checkpoint(out)
    origin = checkpoint.metadata["origin"]
    files = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in (
            FIXTURES / f"{SPM_MODEL}.pt",
            FIXTURES / f"{SPM_MODEL}.src.spm.model",
            FIXTURES / f"{SPM_MODEL}.tgt.spm.model",
        )
    }
    assert origin["toolkit"] == "OpenNMT-py" and origin["files"] == files
    assert origin["converted_by"].startswith("attnviz ")
    assert checkpoint.src_tokenizer["kind"] == "sentencepiece_vocabulary"
    # the converted file needs nothing else and decodes exactly as the imported model
    import attnviz

    imported = attnviz.load_model(
        FIXTURES / f"{SPM_MODEL}.pt",
        src_spm=FIXTURES / f"{SPM_MODEL}.src.spm.model",
        tgt_spm=FIXTURES / f"{SPM_MODEL}.tgt.spm.model",
    )
    converted = attnviz.load_model(out)
    assert converted.rules == imported.rules
    ours = converted.translate(SOURCES[:10], beam_size=5)
    theirs = imported.translate(SOURCES[:10], beam_size=5)
    assert ours == theirs
    assert [a.translation for a in ours] == _reference(SPM_MODEL)["beam"][:10]
    again = _cli("convert", FIXTURES / f"{SPM_MODEL}.pt", "--out", out, *SPM_FILES)
    assert again.exit_code != 0 and "--force" in again.stderr


def test_convert_refuses_to_write_over_its_source(tmp_path):
    import shutil

    copy = tmp_path / "model.pt"
    shutil.copyfile(WORD_MODEL, copy)
    result = _cli("convert", copy, "--out", copy, "--force")
    assert result.exit_code != 0
    assert "is the model being converted" in result.stderr
    assert copy.read_bytes() == WORD_MODEL.read_bytes()


def test_refusals_reach_the_command_line_as_one_line(tmp_path):
    path = _rewritten(tmp_path, coverage_attn=True)
    for command in (
        ["translate", "x", "--model", path],
        ["info", path],
        ["convert", path, "--out", tmp_path / "o.pt"],
    ):
        result = _cli(*command)
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith("coverage_attn is not supported")
    assert not (tmp_path / "o.pt").exists()


def test_readme_commands_for_opennmt_py_run_as_written(tmp_path, monkeypatch):
    import re
    import shlex

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text("utf-8")
    section = readme.split("### OpenNMT-py\n", 1)[1].split("### JoeyNMT", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [
        shlex.split(line)
        for block in blocks
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip()
    ]
    assert len(commands) == 5
    (tmp_path / "tests").symlink_to(root / "tests")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        assert command[0] == "attnviz"
        result = _cli(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "my-model.pt").is_file()


def test_version_2_checkpoints_still_load_and_new_files_are_version_4(tmp_path, checkpoint_path):
    from attnviz.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint

    payload = torch.load(checkpoint_path, weights_only=True)
    payload["format_version"] = 2
    for field in ("attn_query_bias", "decoder_init"):
        payload["config"].pop(field, None)
    old = tmp_path / "v2.pt"
    torch.save(payload, old)
    checkpoint = load_checkpoint(old)
    assert checkpoint.config.decoder_init == "tanh_bridge"
    assert checkpoint.config.attn_query_bias is False
    assert checkpoint.family == "rnn"
    saved = save_checkpoint(checkpoint, tmp_path / "v4.pt")
    assert FORMAT_VERSION == 4
    written = torch.load(saved, weights_only=True)
    assert (written["format_version"], written["family"]) == (4, "rnn")


# -- both toolkits through the same doors ---------------------------------------------------

JOEY = Path(__file__).parent / "peers" / "joeynmt" / "gru-bahdanau-bridge"


def test_joeynmt_models_load_through_load_model_and_every_model_command(tmp_path, monkeypatch):
    import attnviz

    sentence = "noka kamire velo"
    expected = attnviz.load_model(JOEY).translate(sentence)[0].translation
    for form in (JOEY / "config.yaml", JOEY / "best.ckpt"):
        assert attnviz.load_model(form).translate(sentence)[0].translation == expected
        (record,) = _records(_cli("translate", sentence, "--model", form, "--json"))
        assert record["translation"] == expected
    assert _cli("heatmap", sentence, "--model", JOEY, "--out", tmp_path / "j.png").exit_code == 0
    source = tmp_path / "in.txt"
    source.write_text(sentence + "\n", "utf-8")
    assert _cli("export", source, "--out", tmp_path / "out", "--model", JOEY).exit_code == 0
    monkeypatch.setenv("COLUMNS", "240")
    info = _cli("info", JOEY)
    assert info.exit_code == 0, info.output
    assert any(
        "origin.toolkit" in line and "joeynmt" in line.lower() for line in info.stdout.splitlines()
    )
    converted = tmp_path / "joey.pt"
    assert _cli("convert", JOEY, "--out", converted).exit_code == 0
    assert attnviz.load_model(converted).translate(sentence)[0].translation == expected


def test_readme_commands_for_joeynmt_run_as_written(tmp_path, monkeypatch):
    import re
    import shlex

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text("utf-8")
    section = readme.split("### JoeyNMT\n", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]
    commands = [command for command in commands if command[0] == "attnviz"]
    assert len(commands) == 5
    (tmp_path / "tests").symlink_to(root / "tests")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        result = _cli(*command[1:])
        assert result.exit_code == 0, (command, result.output)
    assert (tmp_path / "bpe.png").is_file() and (tmp_path / "joey-bpe.pt").is_file()


@pytest.mark.parametrize("command", ["html", "explain", "eval"])
def test_every_model_command_takes_the_sentencepiece_files(tmp_path, command):
    moved = _rewritten(
        tmp_path,
        SPM_MODEL,
        src_subword_model=str(tmp_path / "moved" / "src.model"),
        tgt_subword_model=str(tmp_path / "moved" / "tgt.model"),
    )
    target = (FIXTURES / "test.tgt").read_text("utf-8").split("\n")[0]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{SOURCES[0]}\t{target}\n", encoding="utf-8")
    args = {
        "html": ["html", SOURCES[0], "--out", tmp_path / "view.html"],
        "explain": ["explain", SOURCES[0], "--json"],
        "eval": ["eval", pairs, "--json"],
    }[command]
    refused = _cli(*args, "--model", moved)
    assert refused.exit_code != 0
    assert "give it with --src-spm" in refused.stderr.strip().splitlines()[-1]
    result = _cli(*args, "--model", moved, *SPM_FILES)
    assert result.exit_code == 0, result.output
    if command == "html":
        assert (tmp_path / "view.html").stat().st_size > 0
    elif command == "explain":
        assert json.loads(result.stdout)["src"]
    else:
        assert json.loads(result.stdout)["rows"][0]["sentences"] == 1


def test_eval_gives_the_reverse_model_the_sentencepiece_files_swapped(tmp_path, monkeypatch):
    import attnviz.cli.evaluate as evaluate

    calls = []

    def fake_load(model, device, precision, src_spm=None, tgt_spm=None, threads=None):
        calls.append((model, src_spm, tgt_spm))
        raise SystemExit(0)  # stop before decoding: only the arguments matter

    monkeypatch.setattr(evaluate, "load_translator", fake_load)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("a\tb\n", encoding="utf-8")
    args = ["eval", pairs, "--model", "f.pt", "--reverse-model", "r.pt", "--sym", "union"]
    _cli(*args, "--src-spm", "s.model", "--tgt-spm", "t.model")
    assert calls == [("r.pt", Path("t.model"), Path("s.model"))]
