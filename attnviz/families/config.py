"""What every family's config shares: field type checks, reading a config from plain data,
and weight shapes computed on the ``meta`` device without building anything real."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch.overrides import TorchFunctionMode

from attnviz.errors import ConfigError

_TYPE_NAMES = {"int": "a whole number", "bool": "true or false", "float": "a number", "str": "text"}
Config = TypeVar("Config")


def check_type(name: str, value: Any, declared: Any) -> None:
    """Config values come from files: check each against its declared type before use.

    Declared types are the annotations' text (``int``, ``bool``, ``float``, ``str``, and any of
    them ``| None``); a type not among those is left to the config's own checks.
    """
    parts = [part.strip() for part in str(getattr(declared, "__name__", declared)).split("|")]
    if "None" in parts and value is None:
        return
    kinds = [part for part in parts if part in _TYPE_NAMES]
    if len(kinds) != 1:
        return
    kind = kinds[0]
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        shown = repr(value) if isinstance(value, int | float | str | bool) else type(value).__name__
        raise ConfigError(f"{name} must be {_TYPE_NAMES[kind]}, not {shown[:60]}")


def check_field_types(config: Any) -> None:
    """:func:`check_type` for every field of a config dataclass."""
    for item in dataclasses.fields(config):
        check_type(item.name, getattr(config, item.name), item.type)


def config_from_dict(cls: type[Config], values: Any) -> Config:
    """Rebuild a config dataclass from plain data; wrong keys, types or ranges are one
    ConfigError line."""
    if not isinstance(values, dict):
        raise ConfigError(f"config must be a dict, not {type(values).__name__}")
    bad_keys = [key for key in values if not isinstance(key, str)]
    if bad_keys:
        raise ConfigError(
            f"config keys must be text; found {type(bad_keys[0]).__name__} {bad_keys[0]!r:.40}"
        )
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown config fields: {', '.join(repr(u) for u in unknown[:5])}")
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"incomplete config: {err}") from err


class _SkipInit(TorchFunctionMode):
    """Random initialisers become no-ops (on ``meta`` they would only cost time: the first
    ``normal_`` there loads torch's compiler stack)."""

    _SKIPPED = frozenset(
        {
            "normal_",
            "uniform_",
            "kaiming_uniform_",
            "kaiming_normal_",
            "xavier_uniform_",
            "xavier_normal_",
            "orthogonal_",
            "trunc_normal_",
        }
    )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in self._SKIPPED:
            return args[0] if args else kwargs.get("tensor")
        return func(*args, **kwargs)


def meta_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight of the network ``build()`` makes, in state-dict order.

    The network is built on the ``meta`` device with random initialisation skipped: no memory
    is allocated and nothing is computed, so a file can be checked against its config in
    milliseconds before anything real is built.
    """
    with torch.device("meta"), _SkipInit():
        network = build()
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}
