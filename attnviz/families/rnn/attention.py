"""Attention scorers: additive (Bahdanau), dot and general (Luong) behind one interface.

Every scorer maps

    query [B, Q], keys [B, N, H], mask [B, N] (bool, True = real token)
        -> context [B, H], weights [B, N], scores [B, N]

where ``scores`` are the raw pre-softmax energies and ``weights`` their softmax over the real
source positions: padded positions get weight exactly 0.
"""

from __future__ import annotations

import torch
from torch import nn

from attnviz.errors import ConfigError

SCORERS = ("additive", "dot", "general")


class Attention(nn.Module):
    """Base class. Subclasses implement :meth:`project_keys` and :meth:`energies`."""

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """Work on the keys that does not depend on the query, done once per sentence.

        keys: [B, N, H] -> projected keys [B, N, *].
        """
        return keys

    def energies(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        """query [B, Q], projected keys [B, N, *] -> scores [B, N]."""
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        scores = self.energies(query, projected_keys)  # [B, N]
        masked = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(masked, dim=-1)  # [B, N]; exp(-inf) = 0 at padding
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(
            1
        )  # [B, 1, N] @ [B, N, H] -> [B, H]
        return context, weights, scores


class AdditiveAttention(Attention):
    """score_j = vᵀ tanh(W q + U h_j), Bahdanau et al. (2015).

    W: query Q -> D (with a bias when ``query_bias``), U: keys H -> D, v: [D]. Works for Q ≠ H.
    """

    def __init__(
        self, query_size: int, key_size: int, attention_size: int, query_bias: bool = False
    ) -> None:
        super().__init__()
        self.W = nn.Linear(query_size, attention_size, bias=query_bias)
        self.U = nn.Linear(key_size, attention_size, bias=False)
        self.v = nn.Parameter(torch.empty(attention_size))
        nn.init.uniform_(self.v, -(attention_size**-0.5), attention_size**-0.5)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.U(keys)  # [B, N, H] -> [B, N, D]

    def energies(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        projected_query = self.W(query).unsqueeze(1)  # [B, Q] -> [B, 1, D]
        hidden = torch.tanh(projected_query + projected_keys)  # [B, N, D]
        return hidden @ self.v  # [B, N, D] @ [D] -> [B, N]


class DotAttention(Attention):
    """score_j = qᵀ h_j, Luong et al. (2015). Needs Q = H."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        if query_size != key_size:
            raise ConfigError(
                f"dot attention needs the decoder query size ({query_size}) to equal the "
                f"encoder output size ({key_size}); use 'general' or 'additive' attention, "
                "or change the hidden sizes"
            )

    def energies(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(projected_keys, query.unsqueeze(2)).squeeze(2)  # [B, N, H] @ [B, H, 1]


class GeneralAttention(Attention):
    """score_j = qᵀ W_a h_j, Luong et al. (2015). W_a maps H -> Q, so Q ≠ H works."""

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.W_a = nn.Linear(key_size, query_size, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        return self.W_a(keys)  # [B, N, H] -> [B, N, Q]

    def energies(self, query: torch.Tensor, projected_keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(projected_keys, query.unsqueeze(2)).squeeze(2)  # [B, N, Q] @ [B, Q, 1]


def build_attention(
    name: str, query_size: int, key_size: int, attention_size: int, query_bias: bool = False
) -> Attention:
    """Build a scorer by name; an unknown name lists the valid ones.

    ``query_bias`` adds a bias to the additive scorer's query projection.
    """
    if name == "additive":
        return AdditiveAttention(query_size, key_size, attention_size, query_bias)
    if name == "dot":
        return DotAttention(query_size, key_size)
    if name == "general":
        return GeneralAttention(query_size, key_size)
    raise ConfigError(f"unknown attention {name!r}; valid: {', '.join(SCORERS)}")
