"""Untrusted text never reaches the terminal raw: the sanitiser and every place that prints."""

from __future__ import annotations

import io
import sys
import unicodedata

import pytest
from typer.testing import CliRunner

from attnviz.cli import app
from attnviz.text import visible

runner = CliRunner()
HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def control_characters(text: str) -> set[str]:
    """Characters of ``text`` a terminal would not simply print (line breaks allowed)."""
    return {
        char
        for char in text
        if char != "\n"
        and char not in "\u200c\u200d"
        and unicodedata.category(char) in HIDDEN_CATEGORIES
    }


# -- the sanitiser -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),  # colour (SGR)
        ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # window title (OSC ... BEL)
        ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),  # clear screen, cursor home
        ("tab\there\nnew\rline", "tab\\there\\nnew\\rline"),
        ("\x00\x08\x7f", "\\x00\\x08\\x7f"),  # NUL, backspace, DEL
        ("\x9b31m\x85\x90", "\\x9b31m\\x85\\x90"),  # C1: CSI, NEL, DCS
        ("abc\u202edef\u2066x\u2069", "abc\\u202edef\\u2066x\\u2069"),  # bidi override, isolate
        ("a\u200bb\ufeffc\u00add\u2060", "a\\u200bb\\ufeffc\\xadd\\u2060"),  # invisible
        ("one\u2028two\u2029", "one\\u2028two\\u2029"),  # line and paragraph separators
        ("lone \udcff", "lone \\udcff"),  # surrogate from a bad byte
        ("tag\U000e0041", "tag\\U000e0041"),
    ],
)
def test_hidden_characters_are_shown_as_escapes(raw, shown):
    assert visible(raw) == shown
    assert shown.isascii() and shown.isprintable()


@pytest.mark.parametrize(
    "text",
    [
        "the boy [red]ate[/red] \\ an apple .",  # markup and backslashes are left to the CLI
        "소년이 사과를 먹었다 . 猫が寝ている",
        "می\u200cخواهم",  # zero-width non-joiner: part of Persian spelling
        "👩\u200d💻 ▁piece",  # zero-width joiner in an emoji sequence
        "wide\u3000space\xa0nbsp",
        "",
    ],
)
def test_printable_text_is_unchanged(text):
    assert visible(text) == text


def test_no_hidden_character_of_any_code_point_survives():
    every = "".join(chr(code) for code in range(sys.maxunicode + 1))
    shown = visible(every)
    assert control_characters(shown) == set()
    shown.encode("utf-8")  # no lone surrogates left
    assert visible(shown) == shown  # applying it twice changes nothing more


def test_non_strings_are_shown_via_str(tmp_path):
    assert visible(tmp_path / "a\x1bb") == str(tmp_path) + "/a\\x1bb"
    assert visible(3) == "3"


def test_console_lines_show_markup_and_controls_literally():
    from attnviz.cli.common import safe_text, stderr_console

    console = stderr_console()
    console.file = io.StringIO()
    message = "[red]x[/red] \x1b[31m :smile: [/] C:\\"
    console.print(safe_text(message, "warning:", "yellow"))
    console.print(safe_text("[b]"))
    assert console.file.getvalue() == "warning: [red]x[/red] \\x1b[31m :smile: [/] C:\\\n[b]\n"


# -- the CLI: sources, translations, pieces, metadata, errors ----------------------------------

HOSTILE_PIECES = ["\x1b[31m", "\x1b]0;pwn\x07", "\u202e"]
TGT_LINES = ["소년이 사과를 먹었다 .", "소녀가 책을 읽는다 .", "개가 공원에서 달린다 ."]


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    """A folder whose name holds an escape sequence."""
    folder = tmp_path_factory.mktemp("models") / "dir\x1b[32m"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def hostile_checkpoint(hostile_dir, spm_models):
    """A model whose target pieces and metadata hold escape sequences and markup."""
    import io as bytes_io

    import sentencepiece as spm
    import torch

    from attnviz.checkpoint import Checkpoint, save_checkpoint
    from attnviz.families.rnn.model import RNNConfig, RNNModel
    from attnviz.tokenizer import sentencepiece_spec

    stream = bytes_io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TGT_LINES * 20),
        model_writer=stream,
        vocab_size=40,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=0,
        unk_id=1,
        bos_id=2,
        eos_id=3,
        num_threads=1,
        minloglevel=2,
        user_defined_symbols=HOSTILE_PIECES,
        normalization_rule_name="identity",  # keep control characters in the pieces
    )
    target = stream.getvalue()
    target_size = spm.SentencePieceProcessor(model_proto=target).vocab_size()
    torch.manual_seed(0)
    config = RNNConfig(
        src_vocab_size=40,
        tgt_vocab_size=target_size,
        embedding_size=8,
        hidden_size=6,
        decoder_hidden_size=12,
        attention_size=5,
    )
    path = hostile_dir / "hostile\x1b[31m.pt"
    save_checkpoint(
        Checkpoint(
            config=config,
            state_dict=RNNModel(config).state_dict(),
            src_tokenizer=sentencepiece_spec(spm_models[0]),
            tgt_tokenizer=sentencepiece_spec(target),
            metadata={
                "note": "\x1b[31mred\x1b[0m",
                "[red]key\x1b[2J": "[red]not red[/red] \u202eevil",
                "nested": {"\x1b]0;pwn\x07": ["\x9b2J"]},
            },
        ),
        path,
    )
    return path


def test_translate_shows_hostile_sources_pieces_and_translations(hostile_checkpoint):
    result = invoke(
        "translate", "the boy \x1b[31mate", "did the \x1b]0;pwn\x07cat\u202e sleep ?",
        "--ref", "소년이 \x1b[31m사과를", "--ref", "\x1b]0;pwn\x07 \u202e먹었다",
        "--model", hostile_checkpoint, "--values",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert control_characters(result.stdout) == set()
    assert control_characters(result.stderr) == set()
    lines = result.stdout.splitlines()
    # the [N] source rules
    assert any("[1] the boy \\x1b[31mate" in line for line in lines)
    assert any("[2] did the \\x1b]0;pwn\\x07cat\\u202e sleep ?" in line for line in lines)
    # the translation lines, then the rows of the tables (target pieces)
    assert any(line.startswith("소년이 \\x1b[31m사과를  (score") for line in lines)
    assert any(line.startswith("\\x1b]0;pwn\\x07 \\u202e먹었다  (score") for line in lines)
    rows = [line.split()[0] for line in lines if line.strip()]
    for piece in ["\\x1b[31m", "\\x1b]0;pwn\\x07", "\\u202e"]:
        assert piece in rows


def test_json_output_escapes_control_characters_too(hostile_checkpoint):
    result = invoke(
        "translate", "the boy", "--ref", "소년이 \x1b[31m사과를", "--json",
        "--model", hostile_checkpoint,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\\u001b[31m" in result.stdout


def test_info_shows_hostile_metadata_and_path_literally(hostile_checkpoint):
    result = invoke("info", hostile_checkpoint)
    assert result.exit_code == 0, result.output
    assert control_characters(result.stdout) == set()
    flat = "".join(result.stdout.split())  # the table may wrap long values
    assert "dir\\x1b[32m/hostile\\x1b[31m.pt" in flat
    assert "training.note\\x1b[31mred\\x1b[0m" in "".join(flat.split("│"))
    assert "training.[red]key\\x1b[2J" in flat
    assert "[red]notred[/red]\\u202eevil" in flat
    assert "\\x9b2J" in flat


def test_error_messages_show_hostile_paths_and_keys(hostile_dir, checkpoint_path):
    import torch

    missing = invoke("translate", "x", "--model", hostile_dir / "nope\x1b[31m[red].pt")
    assert missing.exit_code != 0
    assert control_characters(missing.stderr) == set()
    assert "nope\\x1b[31m[red].pt" in missing.stderr.replace("\n", "")

    # a config key is echoed in the error
    payload = torch.load(checkpoint_path, weights_only=True)
    payload["config"]["\x1b[31mbad\x1b]0;x\x07"] = 1
    broken = hostile_dir / "broken.pt"
    torch.save(payload, broken)
    result = invoke("info", broken)
    assert result.exit_code != 0
    assert control_characters(result.stderr) == set()
    assert len(result.stderr.strip().splitlines()) == 1
    assert "\\x1b[31mbad" in result.stderr


def test_hostile_heatmap_path_is_shown_literally(tmp_path, checkpoint_path):
    out = tmp_path / "fig\x1b[31m\u202e.png"
    result = invoke("heatmap", "the boy", "--out", out, "--model", checkpoint_path)
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert control_characters(result.stderr) == set()
    assert "fig\\x1b[31m\\u202e.png" in result.stderr.replace("\n", "")


def test_json_safe_escapes_hidden_characters_and_reads_back():
    import json

    from attnviz.text import json_safe

    value = {"tok": "a\x9b31m\u202eb\u2028c\x7f", "ko": "소년이 사과를", "zwj": "a\u200db"}
    text = json_safe(json.dumps(value, ensure_ascii=False))
    assert "\x9b" not in text and "\u202e" not in text and "\u2028" not in text
    assert "\x7f" not in text
    assert "\\u009b" in text and "\\u202e" in text and "\\u2028" in text
    assert "소년이 사과를" in text and "\u200d" in text  # printable text stays readable
    assert json.loads(text) == value


def test_alignment_json_line_has_no_raw_hidden_characters():
    import numpy as np

    from attnviz.alignment import Alignment

    alignment = Alignment(
        source="x\u202ey",
        translation="\x9b2J",
        src_tokens=["x\u202ey", "</s>"],
        tgt_tokens=["\x9b2J", "</s>"],
        weights=np.full((2, 2), 0.5, np.float32),
        scores=np.zeros((2, 2), np.float32),
        token_logprobs=np.zeros(2, np.float32),
        score=0.0,
    )
    line = alignment.to_json()
    assert line.isprintable()
    assert Alignment.from_json(line) == alignment
