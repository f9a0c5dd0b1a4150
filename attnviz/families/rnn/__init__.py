"""The RNN family: (bi)GRU/LSTM encoder, bridge, and a decoder with additive (Bahdanau), dot
or general (Luong) attention, one matrix per step (L = H = 1).

Modules: ``model`` (RNNConfig and the network), ``attention`` (the scorers), ``step`` (the
inference step and its memory), ``cells`` (the decoder RNN's cells for inference).
"""

from __future__ import annotations

from typing import Any

from attnviz.families.base import Family


def _config_from_dict(values: dict[str, Any]) -> Any:
    from attnviz.families.rnn.model import RNNConfig

    return RNNConfig.from_dict(values)


def _build(config: Any) -> Any:
    from attnviz.families.rnn.model import RNNModel

    return RNNModel(config)


FAMILY = Family(name="rnn", config_from_dict=_config_from_dict, build=_build)
