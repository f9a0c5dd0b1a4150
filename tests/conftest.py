"""Shared fixtures: a tiny model and checkpoint built from scratch (no bundled files needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

SRC_LINES = [
    "the boy ate an apple .",
    "the girl reads a book .",
    "a dog runs in the park .",
    "did the cat sleep ?",
    "my friend drinks water every day .",
]
TGT_LINES = [
    "소년이 사과를 먹었다 .",
    "소녀가 책을 읽는다 .",
    "개가 공원에서 달린다 .",
    "고양이가 잤니 ?",
    "내 친구는 매일 물을 마신다 .",
]
SRC_VOCAB = 40
TGT_VOCAB = 42


@pytest.fixture(scope="session")
def spm_models() -> tuple[bytes, bytes]:
    from attnviz.tokenizer import train_sentencepiece

    return (
        train_sentencepiece(SRC_LINES * 20, SRC_VOCAB),
        train_sentencepiece(TGT_LINES * 20, TGT_VOCAB),
    )


def make_checkpoint(spm_models, attention: str = "additive", rnn: str = "gru", seed: int = 0):
    import torch

    from attnviz.checkpoint import Checkpoint
    from attnviz.families.rnn.model import RNNConfig, RNNModel
    from attnviz.tokenizer import sentencepiece_spec

    torch.manual_seed(seed)
    config = RNNConfig(
        src_vocab_size=SRC_VOCAB,
        tgt_vocab_size=TGT_VOCAB,
        embedding_size=16,
        hidden_size=12,  # bidirectional: H = 24
        decoder_hidden_size=24 if attention == "dot" else 20,  # Q ≠ H except for dot
        attention_size=10,
        attention=attention,
        rnn=rnn,
        dropout=0.0,
    )
    model = RNNModel(config)
    return Checkpoint(
        config=config,
        state_dict=model.state_dict(),
        src_tokenizer=sentencepiece_spec(spm_models[0]),
        tgt_tokenizer=sentencepiece_spec(spm_models[1]),
        metadata={"note": "test fixture"},
    )


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory, spm_models) -> Path:
    from attnviz.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(make_checkpoint(spm_models), path)
    return path


@pytest.fixture(scope="session", params=["additive", "dot", "general"])
def translator(request, spm_models):
    from attnviz.translator import Translator

    return Translator(make_checkpoint(spm_models, attention=request.param), "cpu")
