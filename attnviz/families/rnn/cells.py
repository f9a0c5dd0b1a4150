"""The decoder RNN's cells for inference, the first layer's input fed from a lookup table.

:class:`ExactCells` runs torch's fused cells (float64); :class:`SigmoidCells` computes tanh
as ``2 sigmoid(2x) - 1`` (below float64). Both take the previous tokens ``[B]`` and the
decoder state and return the top layer's new hidden state ``[B, Q]`` with the new RNN state.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from attnviz.families.rnn.model import DecoderState


def _layer_weights(rnn: torch.nn.RNNBase, layer: int) -> tuple[torch.Tensor, ...]:
    return tuple(
        getattr(rnn, f"{name}_l{layer}")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


class ExactCells:
    """The decoder RNN with torch's fused cells (exact tanh), layer 0 fed by the table."""

    def __init__(self, rnn: torch.nn.RNNBase, embedding: torch.Tensor, config) -> None:
        self.lstm = config.rnn == "lstm"
        w_ih, _, b_ih, _ = _layer_weights(rnn, 0)  # w_ih [G*Q, E (+ Q)]
        size = embedding.size(1)
        self.table = F.linear(embedding, w_ih[:, :size], b_ih)  # [V, G*Q]
        self.feed_weight = w_ih[:, size:]  # [G*Q, Q], or [G*Q, 0] without input feeding
        self.layers = [_layer_weights(rnn, layer) for layer in range(config.decoder_layers)]

    def __call__(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[Any, Any]:
        input_bias = self.table.index_select(0, prev_tokens)  # [B, G*Q]
        feed = state.attentional[:, : self.feed_weight.size(1)]  # [B, Q] or [B, 0]
        if self.lstm:
            hidden, cell = state.rnn  # [L, B, Q] each
            hiddens, cells = [], []
            for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
                if layer == 0:
                    h, c = torch.lstm_cell(
                        feed, (hidden[0], cell[0]), self.feed_weight, w_hh, input_bias, b_hh
                    )
                else:
                    h, c = torch.lstm_cell(h, (hidden[layer], cell[layer]), w_ih, w_hh, b_ih, b_hh)
                hiddens.append(h)
                cells.append(c)
            return h, (torch.stack(hiddens), torch.stack(cells))
        hidden = state.rnn
        hiddens = []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            if layer == 0:
                h = torch.gru_cell(feed, hidden[0], self.feed_weight, w_hh, input_bias, b_hh)
            else:
                h = torch.gru_cell(h, hidden[layer], w_ih, w_hh, b_ih, b_hh)
            hiddens.append(h)
        return h, torch.stack(hiddens)


class SigmoidCells:
    """The decoder RNN in plain operations, tanh(x) as 2 sigmoid(2x) - 1.

    LSTM: the gates are reordered to (i, f, o, g) with g's rows doubled, the input and
    recurrent weights of a layer are stacked side by side, so ``[x; h] @ W`` and one sigmoid
    give all four gates. GRU: the n gate's rows are doubled; ``h' = lerp(n, h, z)``.
    """

    def __init__(self, rnn: torch.nn.RNNBase, embedding: torch.Tensor, config) -> None:
        self.lstm = config.rnn == "lstm"
        q = config.decoder_hidden_size
        size = embedding.size(1)
        if self.lstm:  # torch's order is (i, f, g, o)
            order = torch.cat(
                [torch.arange(0, 2 * q), torch.arange(3 * q, 4 * q), torch.arange(2 * q, 3 * q)]
            ).to(embedding.device)
            scale = torch.ones(4 * q, 1, dtype=embedding.dtype, device=embedding.device)
            scale[3 * q :] = 2.0
        else:  # (r, z, n)
            order = torch.arange(3 * q, device=embedding.device)
            scale = torch.ones(3 * q, 1, dtype=embedding.dtype, device=embedding.device)
            scale[2 * q :] = 2.0
        self.q = q
        self.layers = []
        for layer in range(config.decoder_layers):
            w_ih, w_hh, b_ih, b_hh = (
                t[order] * (scale if t.dim() == 2 else scale[:, 0])
                for t in _layer_weights(rnn, layer)
            )
            if layer == 0:
                self.table = F.linear(embedding, w_ih[:, :size], b_ih)  # [V, G*Q]
                w_ih = w_ih[:, size:]  # the attentional part (input feeding), or [G*Q, 0]
                if self.lstm:
                    self.table = self.table + b_hh
            if self.lstm:  # one product for [x; h]
                joined = torch.cat([w_ih, w_hh], dim=1).t()  # [In + Q, 4Q]
                self.layers.append((joined, None if layer == 0 else b_ih + b_hh))
            else:
                self.layers.append((w_ih.t(), w_hh.t(), None if layer == 0 else b_ih, b_hh))
        self.feed = self.layers[0][0].size(0) - (q if self.lstm else 0)

    def __call__(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[Any, Any]:
        q = self.q
        input_bias = self.table.index_select(0, prev_tokens)  # [B, G*Q]
        x = state.attentional[:, : self.feed]  # [B, Q] or [B, 0]
        if self.lstm:
            hidden, cell = state.rnn  # [L, B, Q] each
            hiddens, cells = [], []
            for layer, (joined, bias) in enumerate(self.layers):
                inputs = torch.cat([x, hidden[layer]], dim=1)  # [B, In + Q]
                base = input_bias if layer == 0 else bias
                gates = torch.sigmoid(torch.addmm(base, inputs, joined))  # [B, 4Q]
                g = gates[:, 3 * q :].mul(2).sub_(1)
                c = torch.addcmul(gates[:, q : 2 * q] * cell[layer], gates[:, :q], g)
                x = gates[:, 2 * q : 3 * q] * torch.sigmoid(c * 2).mul_(2).sub_(1)
                hiddens.append(x)
                cells.append(c)
            return x, (torch.stack(hiddens), torch.stack(cells))
        hidden = state.rnn
        hiddens = []
        for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(self.layers):
            base = input_bias if layer == 0 else b_ih
            gi = torch.addmm(base, x, w_ih) if w_ih.size(0) else base  # [B, 3Q]
            gh = torch.addmm(b_hh, hidden[layer], w_hh)  # [B, 3Q]
            rz = torch.sigmoid(gi[:, : 2 * q] + gh[:, : 2 * q])  # [B, 2Q]
            n = torch.sigmoid(torch.addcmul(gi[:, 2 * q :], rz[:, :q], gh[:, 2 * q :]))
            x = torch.lerp(n.mul_(2).sub_(1), hidden[layer], rz[:, q:])  # (1 - z) n + z h
            hiddens.append(x)
        return x, torch.stack(hiddens)
