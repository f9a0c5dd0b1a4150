"""Scorers against hand-computed values; masking; the shared interface."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from attnviz.errors import ConfigError
from attnviz.families.rnn.attention import (
    SCORERS,
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    build_attention,
)


def softmax(values):
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    return [e / sum(exps) for e in exps]


def test_additive_matches_hand_computation_with_q_not_h():
    # Q = 1, H = 2, D = 2: every number below is worked out by hand.
    attention = AdditiveAttention(query_size=1, key_size=2, attention_size=2)
    with torch.no_grad():
        attention.W.weight.copy_(torch.tensor([[1.0], [-1.0]]))  # [D, Q]
        attention.U.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))  # [D, H]
        attention.v.copy_(torch.tensor([1.0, 0.5]))
    query = torch.tensor([[0.5]])  # [1, Q]
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [1, 3, H]
    mask = torch.tensor([[True, True, True]])
    # W q = [0.5, -0.5]; U h = [1, 0], [0, 2], [1, 2]
    expected_scores = [
        math.tanh(1.5) + 0.5 * math.tanh(-0.5),
        math.tanh(0.5) + 0.5 * math.tanh(1.5),
        math.tanh(1.5) + 0.5 * math.tanh(1.5),
    ]
    weights_hand = softmax(expected_scores)
    context_hand = [weights_hand[0] + weights_hand[2], weights_hand[1] + weights_hand[2]]
    context, weights, scores = attention(query, keys, mask)
    assert_close(scores, torch.tensor([expected_scores]))
    assert_close(weights, torch.tensor([weights_hand]))
    assert_close(context, torch.tensor([context_hand]))
    assert {name for name, _ in attention.named_parameters()} == {"W.weight", "U.weight", "v"}


def test_dot_matches_hand_computation():
    attention = DotAttention(query_size=2, key_size=2)
    query = torch.tensor([[1.0, 2.0]])
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    mask = torch.tensor([[True, True, True]])
    context, weights, scores = attention(query, keys, mask)
    hand = softmax([1.0, 2.0, 3.0])
    assert_close(scores, torch.tensor([[1.0, 2.0, 3.0]]))
    assert_close(weights, torch.tensor([hand]))
    assert_close(context, torch.tensor([[hand[0] + hand[2], hand[1] + hand[2]]]))


def test_dot_rejects_q_not_h_with_clear_message():
    with pytest.raises(ConfigError, match=r"query size \(3\).*encoder output size \(2\)"):
        DotAttention(query_size=3, key_size=2)


def test_general_matches_hand_computation_with_q_not_h():
    # Q = 1, H = 2: W_a maps H -> Q
    attention = GeneralAttention(query_size=1, key_size=2)
    with torch.no_grad():
        attention.W_a.weight.copy_(torch.tensor([[2.0, -1.0]]))  # [Q, H]
    query = torch.tensor([[0.5]])
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]]])
    mask = torch.tensor([[True, True, True]])
    # W_a h = 2, -1, 5; times q = 1, -0.5, 2.5
    context, weights, scores = attention(query, keys, mask)
    hand = softmax([1.0, -0.5, 2.5])
    assert_close(scores, torch.tensor([[1.0, -0.5, 2.5]]))
    assert_close(weights, torch.tensor([hand]))
    assert_close(context, torch.tensor([[hand[0] + 3 * hand[2], hand[1] + hand[2]]]))


@pytest.mark.parametrize("name", SCORERS)
def test_padding_gets_exactly_zero_and_rows_sum_to_one(name):
    torch.manual_seed(3)
    q, h = (6, 6) if name == "dot" else (5, 7)
    attention = build_attention(name, q, h, 4)
    query = torch.randn(3, q)
    keys = torch.randn(3, 6, h)
    lengths = torch.tensor([6, 4, 1])
    mask = torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)
    context, weights, scores = attention(query, keys, mask)
    assert context.shape == (3, h) and weights.shape == (3, 6) and scores.shape == (3, 6)
    assert torch.all(weights[~mask] == 0.0)
    assert_close(weights.sum(dim=1), torch.ones(3))
    assert weights[2, 0].item() == 1.0
    # the padded keys do not change the result for a sentence
    alone = attention(query[1:2], keys[1:2, :4], mask[1:2, :4])
    assert_close(alone[1], weights[1:2, :4])
    assert_close(alone[0], context[1:2])


def test_unknown_scorer_lists_valid_names():
    with pytest.raises(ConfigError, match="additive, dot, general"):
        build_attention("cosine", 4, 4, 4)
