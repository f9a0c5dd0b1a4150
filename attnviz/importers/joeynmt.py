"""JoeyNMT 2 recurrent models -> attnviz checkpoints.

A JoeyNMT model is a folder: ``config.yaml`` (the training configuration), one or more
``*.ckpt`` files (``{"model_state": ..., "optimizer_state": ...}``), ``src_vocab.txt`` and
``trg_vocab.txt`` and, for subword models, the BPE codes or SentencePiece models the config
names. The folder, its config or one of its checkpoints are all accepted.

What maps onto attnviz (everything else is refused with a line naming the option):

==============================  ==============================================================
JoeyNMT                         attnviz
==============================  ==============================================================
recurrent encoder (bi-GRU/LSTM) ``Encoder``, ``bidirectional``, ``encoder_layers``
recurrent decoder               ``AttnDecoder``; the query is the new top-layer state
attention bahdanau / luong      ``additive`` (no biases) / ``general``
att_vector_layer                ``combine``: tanh(W [state; context] + b), ``state_first``
output_layer (no bias)          ``output``, ``output_bias=False``
init_hidden bridge/last/zero    ``decoder_init`` shared_tanh_bridge / shared_last / zero
input_feeding                   ``input_feeding``
embeddings.scale                sqrt(dim) folded into the embedding weights
tied_embeddings, tied_softmax   the shared weights copied to each attnviz parameter
level word / bpe                ``vocabulary``, ``subword_nmt``, ``sentencepiece_vocabulary``
testing: beam_alpha, min/max    ``SearchRules`` (JoeyNMT's beam, gnmt length penalty,
output_length, generate_unk     length limit, forbidden tokens)
==============================  ==============================================================

Refused: Transformer encoders or decoders, a unidirectional encoder (JoeyNMT's own recurrent
encoder fails without the backward direction), different RNN types on the two sides,
activations other than tanh, character level, the Moses pre-tokenizer, BPE separators other
than ``@@`` and prompt (``sep_token``) models.
"""

from __future__ import annotations

import hashlib
import math
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.errors import AttnvizError, CheckpointError

if TYPE_CHECKING:
    from attnviz.checkpoint import Checkpoint

TOOLKIT = "joeynmt"
CONFIG_NAME = "config.yaml"
MAX_CONFIG_BYTES = 1_000_000  # a training config is a few kB; refuse to parse anything huge
CHECKPOINT_PREFERENCE = ("best.ckpt", "latest.ckpt")
_STATE_KEY = b"model_state"


# -- detection ---------------------------------------------------------------------------


def detect(path: Path) -> bool:
    """Whether ``path`` is a JoeyNMT model folder, its config or one of its checkpoints."""
    try:
        return _locate(Path(path)) is not None
    except Exception:  # detection must never fail on foreign files
        return False


def _read_yaml(path: Path) -> Any:
    import yaml

    if path.stat().st_size > MAX_CONFIG_BYTES:
        return None
    with path.open("r", encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _is_config(value: Any) -> bool:
    """The shape of a JoeyNMT configuration: model.encoder, model.decoder and data.src."""
    if not isinstance(value, dict):
        return False
    model, data = value.get("model"), value.get("data")
    return (
        isinstance(model, dict)
        and isinstance(model.get("encoder"), dict)
        and isinstance(model.get("decoder"), dict)
        and isinstance(data, dict)
        and "src" in data
        and "trg" in data
    )


def _config_in(folder: Path) -> Path | None:
    """The JoeyNMT config of a folder: config.yaml first, then any other YAML file."""
    candidates = [folder / CONFIG_NAME]
    candidates += sorted(p for p in folder.glob("*.y*ml") if p.name != CONFIG_NAME)
    for candidate in candidates:
        try:
            if candidate.is_file() and _is_config(_read_yaml(candidate)):
                return candidate
        except Exception:
            continue
    return None


def _is_joey_checkpoint(path: Path) -> bool:
    """A torch file whose pickled top level names ``model_state`` (read without unpickling)."""
    if not path.is_file():
        return False
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1 or archive.getinfo(names[0]).file_size > 50_000_000:
                return False
            return _STATE_KEY in archive.read(names[0])
    with path.open("rb") as stream:  # torch's legacy format: the dict is pickled first
        return _STATE_KEY in stream.read(1 << 16)


def _checkpoints_in(folder: Path) -> list[Path]:
    """JoeyNMT checkpoints in a folder, recognised by content (``*.ckpt`` looked at first)."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for group in (
        [p for p in files if p.suffix == ".ckpt"],
        [p for p in files if p.suffix != ".ckpt"],
    ):
        found = [p for p in group if _is_joey_checkpoint(p)]
        if found:
            return found
    return []


def _pick_checkpoint(found: list[Path]) -> Path:
    """As JoeyNMT does: best.ckpt, else latest.ckpt, else the one of the highest step."""
    by_name = {p.name: p for p in found}
    for name in CHECKPOINT_PREFERENCE:
        if name in by_name:
            return by_name[name]
    numbered = [p for p in found if p.stem.isdigit()]
    if numbered:
        return max(numbered, key=lambda p: int(p.stem))
    return sorted(found)[-1]


def _locate(path: Path) -> tuple[Path, Path] | None:
    """(config, checkpoint) of the model at ``path``, or None if it is not a JoeyNMT model."""
    if path.is_dir():
        config = _config_in(path)
        found = _checkpoints_in(path) if config is not None else []
        return (config, _pick_checkpoint(found)) if config is not None and found else None
    if not path.is_file():
        return None
    if path.stat().st_size <= MAX_CONFIG_BYTES and not zipfile.is_zipfile(path):
        try:
            is_config = _is_config(_read_yaml(path))
        except Exception:
            is_config = False
        if is_config:
            found = _checkpoints_in(path.parent)
            return (path, _pick_checkpoint(found)) if found else None
    if _is_joey_checkpoint(path):
        config = _config_in(path.parent)
        return (config, path) if config is not None else None
    return None


# -- loading -----------------------------------------------------------------------------


class _Origin:
    """What an import read and decided: files with their hashes, and mapping lines."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}
        self.mapping: list[str] = []

    def read_bytes(self, path: Path) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"{path}: cannot read ({err.strerror or err})") from err
        self.files[path.name] = hashlib.sha256(data).hexdigest()
        return data

    def note(self, line: str) -> None:
        self.mapping.append(line)


def load(
    path: str | os.PathLike[str],
    *,
    src_spm: str | os.PathLike[str] | bytes | None = None,
    tgt_spm: str | os.PathLike[str] | bytes | None = None,
) -> Checkpoint:
    """The JoeyNMT model at ``path`` as an attnviz checkpoint.

    ``src_spm``/``tgt_spm``: SentencePiece models (paths or bytes) to segment that side with,
    instead of what the config names (for models trained on text segmented outside JoeyNMT).
    """
    from attnviz.checkpoint import Checkpoint

    path = Path(path)
    located = _locate(path)
    if located is None:
        raise CheckpointError(
            f"{path}: not a JoeyNMT model (needs a config.yaml and a .ckpt holding model_state)"
        )
    config_path, ckpt_path = located
    folder = config_path.parent
    origin = _Origin()
    config_text = origin.read_bytes(config_path)
    cfg = _parse_config(config_text, config_path)
    state = _read_state(ckpt_path, origin)
    origin.note(f"checkpoint: {ckpt_path.name}")

    data = cfg["data"]
    if not isinstance(data.get("src"), dict) or not isinstance(data.get("trg"), dict):
        raise CheckpointError(
            f"{config_path}: data.src and data.trg must be sections (JoeyNMT 2 layout); "
            "JoeyNMT 1 configs are not supported"
        )
    specials = _special_symbols(data, config_path)
    src_tokens = _vocabulary(folder, data["src"], "src", specials, origin, config_path)
    tgt_tokens = _vocabulary(folder, data["trg"], "trg", specials, origin, config_path)
    special_ids = [specials[k] for k in ("pad_id", "bos_id", "eos_id")]
    src_tokenizer = _tokenizer(
        config_path, data["src"], "src", src_tokens, specials, src_spm, origin
    )
    tgt_tokenizer = _tokenizer(
        config_path, data["trg"], "trg", tgt_tokens, specials, tgt_spm, origin
    )
    for spec, tokens in ((src_tokenizer, src_tokens), (tgt_tokenizer, tgt_tokens)):
        tags = [tokens.index(tag) for tag in specials["lang_tags"]]
        spec["specials"] = sorted({*special_ids, *tags})
    tgt_tags = [tgt_tokens.index(tag) for tag in specials["lang_tags"]]

    config = _model_config(cfg["model"], len(src_tokens), len(tgt_tokens), specials, origin)
    state_dict = _state_dict(cfg["model"], config, state, origin, ckpt_path)
    rules = _search_rules(cfg.get("testing") or {}, specials, tgt_tags, origin, config_path)

    version = cfg.get("joeynmt_version")
    checkpoint = Checkpoint(
        config=config,
        state_dict=state_dict,
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        search=rules.to_dict(),
        metadata={
            "origin": {
                "toolkit": TOOLKIT,
                "version": str(version) if version is not None else "2.x",
                "files": dict(origin.files),
                "mapping": list(origin.mapping),
            }
        },
        path=ckpt_path,
    )
    _check_tokenizers(checkpoint)
    return checkpoint


def _parse_config(text: bytes, path: Path) -> dict[str, Any]:
    import yaml

    try:
        cfg = yaml.safe_load(text.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{path}: not a readable YAML file ({err.__class__.__name__})"
        ) from err
    if not _is_config(cfg):
        raise CheckpointError(f"{path}: not a JoeyNMT config (needs model.encoder/decoder, data)")
    return cfg


def _read_state(path: Path, origin: _Origin) -> dict[str, Any]:
    import torch

    from attnviz.checkpoint import _read

    origin.read_bytes(path)  # hash what is loaded
    payload = _read(path, "cpu")
    state = payload.get("model_state") if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: a JoeyNMT checkpoint needs model_state, a dict of tensors")
    return state


def _special_symbols(data: dict[str, Any], config_path: Path) -> dict[str, Any]:
    given = data.get("special_symbols") or {}
    if not isinstance(given, dict):
        raise CheckpointError(f"{config_path}: data.special_symbols must be a section")
    symbols = {
        "unk_token": "<unk>",
        "unk_id": 0,
        "pad_token": "<pad>",
        "pad_id": 1,
        "bos_token": "<s>",
        "bos_id": 2,
        "eos_token": "</s>",
        "eos_id": 3,
        "sep_token": None,
        "lang_tags": [],
        **given,
    }
    if symbols["sep_token"]:
        raise CheckpointError(
            f"{config_path}: data.special_symbols.sep_token (prompted models) is not supported"
        )
    if not isinstance(symbols["lang_tags"], list):
        raise CheckpointError(f"{config_path}: data.special_symbols.lang_tags must be a list")
    return symbols


def _find_file(folder: Path, named: Any, what: str, config_path: Path) -> Path:
    """A file the config names: beside the config (JoeyNMT copies it there), else as given."""
    if not isinstance(named, str) or not named:
        raise CheckpointError(f"{config_path}: {what} is missing")
    given = Path(named).expanduser()
    for candidate in (folder / given.name, given if given.is_absolute() else folder / given):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"{config_path}: {what} {named!r} not found beside the config")


def _vocabulary(
    folder: Path,
    side: dict[str, Any],
    name: str,
    specials: dict[str, Any],
    origin: _Origin,
    config_path: Path,
) -> list[str]:
    """The vocabulary as JoeyNMT builds it: specials, language tags, then the file's lines."""
    file = folder / f"{name}_vocab.txt"
    if not file.is_file():
        file = _find_file(folder, side.get("voc_file"), f"data.{name}.voc_file", config_path)
    try:
        lines = origin.read_bytes(file).decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise CheckpointError(f"{file}: the vocabulary is not UTF-8 text") from err
    head = [specials[k] for k in ("unk_token", "pad_token", "bos_token", "eos_token")]
    tokens: list[str] = []
    seen: set[str] = set()
    for token in [*head, *specials["lang_tags"], *lines]:
        if token not in seen:
            seen.add(token)
            tokens.append(token)
    for key in ("unk", "pad", "bos", "eos"):
        if tokens.index(specials[f"{key}_token"]) != specials[f"{key}_id"]:
            raise CheckpointError(
                f"{config_path}: data.special_symbols.{key}_id does not match the vocabulary"
            )
    origin.note(f"{name} vocabulary: {file.name}, {len(tokens)} entries")
    return tokens


def _tokenizer(
    config_path: Path,
    side: dict[str, Any],
    name: str,
    tokens: list[str],
    specials: dict[str, Any],
    spm_override: str | os.PathLike[str] | bytes | None,
    origin: _Origin,
) -> dict[str, Any]:
    """The tokenizer spec of one side (see attnviz.tokenizer's vocabulary kinds)."""
    from attnviz.tokenizer import restrict_sentencepiece

    folder = config_path.parent
    level = side.get("level", "word")
    kind = side.get("tokenizer_type", side.get("bpe_type", "sentencepiece"))
    options = side.get("tokenizer_cfg") or {}
    if not isinstance(options, dict):
        raise CheckpointError(f"{config_path}: data.{name}.tokenizer_cfg must be a section")
    if str(options.get("pretokenizer", "none")).lower() != "none":
        raise CheckpointError(
            f"{config_path}: data.{name}.tokenizer_cfg.pretokenizer "
            f"{options['pretokenizer']!r} is not supported"
        )
    base: dict[str, Any] = {
        "tokens": tokens,
        "unk_id": specials["unk_id"],
        "lowercase": bool(side.get("lowercase", False)),
        "normalize": bool(side.get("normalize", False)),
    }
    if spm_override is not None:
        if level == "bpe" and kind == "subword-nmt":
            raise CheckpointError(
                f"{config_path}: data.{name} uses subword-nmt BPE; a SentencePiece model "
                "cannot replace it"
            )
        if isinstance(spm_override, bytes):
            model, shown = spm_override, "given as bytes"
            origin.files[f"{name} SentencePiece model"] = hashlib.sha256(model).hexdigest()
        else:
            model, shown = origin.read_bytes(Path(spm_override)), Path(spm_override).name
        origin.note(f"{name} tokenizer: SentencePiece {shown} (given)")
        return {
            "kind": "sentencepiece_vocabulary",
            "model": restrict_sentencepiece(model, tokens),
            **base,
        }
    if level == "word":
        origin.note(f"{name} tokenizer: words split on whitespace, unknown words -> <unk>")
        return {"kind": "vocabulary", **base}
    if level != "bpe":
        raise CheckpointError(f"{config_path}: data.{name}.level {level!r} is not supported")
    if kind == "subword-nmt":
        separator = options.get("separator", "@@")
        if separator != "@@":
            raise CheckpointError(
                f"{config_path}: data.{name}.tokenizer_cfg.separator {separator!r} is not "
                "supported (only @@)"
            )
        codes = _find_file(
            folder, options.get("codes"), f"data.{name}.tokenizer_cfg.codes", config_path
        )
        try:
            text = origin.read_bytes(codes).decode("utf-8")
        except UnicodeDecodeError as err:
            raise CheckpointError(f"{codes}: BPE codes are not UTF-8 text") from err
        origin.note(f"{name} tokenizer: subword-nmt BPE {codes.name}, @@ joiners")
        return {"kind": "subword_nmt", "codes": text, **base}
    if kind == "sentencepiece":
        file = _find_file(
            folder, options.get("model_file"), f"data.{name}.tokenizer_cfg.model_file", config_path
        )
        model = origin.read_bytes(file)
        origin.note(f"{name} tokenizer: SentencePiece {file.name}, restricted to the vocabulary")
        return {
            "kind": "sentencepiece_vocabulary",
            "model": restrict_sentencepiece(model, tokens),
            **base,
        }
    raise CheckpointError(f"{config_path}: data.{name}.tokenizer_type {kind!r} is not supported")


def _section(model: dict[str, Any], name: str) -> dict[str, Any]:
    section = model.get(name)
    if not isinstance(section, dict):
        raise CheckpointError(f"model.{name} must be a section")
    return section


def _model_config(
    model: dict[str, Any],
    src_vocab: int,
    tgt_vocab: int,
    specials: dict[str, Any],
    origin: _Origin,
) -> Any:
    from attnviz.families.rnn.model import RNNConfig

    enc, dec = _section(model, "encoder"), _section(model, "decoder")
    for side, section, default in (("encoder", enc, "recurrent"), ("decoder", dec, "transformer")):
        kind = section.get("type", default)
        if kind != "recurrent":
            raise CheckpointError(
                f"model.{side}.type {kind!r} is not supported: attnviz reads recurrent "
                "encoders and decoders"
            )
    if not enc.get("bidirectional", True):
        raise CheckpointError(
            "model.encoder.bidirectional: false is not supported (JoeyNMT's recurrent "
            "encoder needs both directions)"
        )
    rnn = str(enc.get("rnn_type", "gru")).lower()
    if str(dec.get("rnn_type", "gru")).lower() != rnn:
        raise CheckpointError(
            "model.encoder.rnn_type and model.decoder.rnn_type differ; attnviz needs one RNN type"
        )
    if dec.get("activation", "tanh") != "tanh":
        raise CheckpointError(f"model.decoder.activation {dec['activation']!r} is not supported")
    attention = dec.get("attention", "bahdanau")
    scorers = {"bahdanau": "additive", "luong": "general"}
    if attention not in scorers:
        raise CheckpointError(f"model.decoder.attention {attention!r} is not supported")
    src_dim = int(_section(enc, "embeddings").get("embedding_dim", 64))
    tgt_dim = int(_section(dec, "embeddings").get("embedding_dim", 64))
    init_hidden = dec.get("init_hidden", "bridge")
    modes = {"bridge": "shared_tanh_bridge", "last": "shared_last"}
    values = {
        "src_vocab_size": src_vocab,
        "tgt_vocab_size": tgt_vocab,
        "embedding_size": src_dim,
        "tgt_embedding_size": tgt_dim if tgt_dim != src_dim else None,
        "hidden_size": int(enc.get("hidden_size", 1)),
        "decoder_hidden_size": int(dec.get("hidden_size", 1)),
        "attention_size": int(dec.get("hidden_size", 1)),
        "attention": scorers[attention],
        "rnn": rnn,
        "encoder_layers": int(enc.get("num_layers", 1)),
        "decoder_layers": int(dec.get("num_layers", 1)),
        "bidirectional": True,
        "dropout": 0.0,
        "input_feeding": bool(dec.get("input_feeding", True)),
        "attn_concat_order": "state_first",
        "attn_out_bias": True,
        "attn_out_tanh": True,
        "src_eos": True,
        "output_bias": False,
        "decoder_init": modes.get(init_hidden, "zero"),
        "pad_id": specials["pad_id"],
        "unk_id": specials["unk_id"],
        "bos_id": specials["bos_id"],
        "eos_id": specials["eos_id"],
    }
    try:
        config = RNNConfig(**values)
    except AttnvizError as err:
        raise CheckpointError(f"model: {err}") from err
    origin.note(
        f"encoder: bidirectional {rnn}, {values['encoder_layers']} layer(s) of "
        f"{values['hidden_size']}; decoder: {rnn}, {values['decoder_layers']} layer(s) of "
        f"{values['decoder_hidden_size']}"
    )
    origin.note(
        f"attention: {attention} -> {scorers[attention]}, queried with the decoder's new "
        "top-layer state; attentional vector tanh(W [state; context] + b) -> state_first"
    )
    origin.note(f"decoder.init_hidden: {init_hidden} -> decoder_init {values['decoder_init']}")
    origin.note(f"input_feeding: {values['input_feeding']}; output layer without bias")
    return config


# JoeyNMT parameter names -> attnviz's, for the parts that are always present.
_NAMES = {
    "src_embed.lut.weight": "encoder.embedding.weight",
    "trg_embed.lut.weight": "decoder.embedding.weight",
    "decoder.att_vector_layer.weight": "decoder.combine.weight",
    "decoder.att_vector_layer.bias": "decoder.combine.bias",
    "decoder.output_layer.weight": "decoder.output.weight",
    "decoder.bridge_layer.weight": "bridge.hidden.weight",
    "decoder.bridge_layer.bias": "bridge.hidden.bias",
    "decoder.attention.key_layer.weight": None,  # depends on the attention type
    "decoder.attention.query_layer.weight": "decoder.attention.W.weight",
    "decoder.attention.energy_layer.weight": "decoder.attention.v",
}


def _state_dict(
    model: dict[str, Any],
    config: Any,
    state: dict[str, Any],
    origin: _Origin,
    ckpt_path: Path,
) -> dict[str, Any]:
    """JoeyNMT's weights under attnviz's names, shapes checked later by build_model."""
    additive = config.attention == "additive"
    converted: dict[str, Any] = {}
    unknown = []
    for name, tensor in state.items():
        if name.startswith(("encoder.rnn.", "decoder.rnn.")):
            converted[name] = tensor
            continue
        if name not in _NAMES:
            unknown.append(name)
            continue
        target = _NAMES[name]
        if target is None:
            target = "decoder.attention.U.weight" if additive else "decoder.attention.W_a.weight"
        if name == "decoder.attention.energy_layer.weight":
            tensor = tensor.reshape(-1)  # [1, D] -> v [D]
        converted[target] = tensor.detach().clone()
    if unknown:
        shown = ", ".join(sorted(unknown)[:3])
        raise CheckpointError(f"{ckpt_path}: parameters attnviz cannot map: {shown}")
    for side, key in (
        ("encoder", "encoder.embedding.weight"),
        ("decoder", "decoder.embedding.weight"),
    ):
        embeddings = _section(_section(model, side), "embeddings")
        if embeddings.get("scale", False) and key in converted:
            factor = math.sqrt(int(embeddings.get("embedding_dim", 64)))
            converted[key] = converted[key] * factor
            origin.note(
                f"model.{side}.embeddings.scale: sqrt({embeddings.get('embedding_dim')}) "
                "folded into the weights"
            )
    if model.get("tied_embeddings"):
        origin.note("tied_embeddings: the shared table copied to both embeddings")
    if model.get("tied_softmax"):
        origin.note("tied_softmax: the output layer is a copy of the target embeddings")
    return converted


def _search_rules(
    testing: dict[str, Any],
    specials: dict[str, Any],
    lang_tag_ids: list[int],
    origin: _Origin,
    config_path: Path,
) -> Any:
    """JoeyNMT's search: its beam, min/max output length, forbidden tokens, alpha."""
    from attnviz.decoding import SearchRules

    if not isinstance(testing, dict):
        raise CheckpointError(f"{config_path}: testing must be a section")
    alpha = testing.get("beam_alpha", testing.get("alpha", -1))
    max_length = testing.get("max_output_length", -1)
    min_length = testing.get("min_output_length", 1)
    for key, value in (
        ("beam_alpha", alpha),
        ("max_output_length", max_length),
        ("min_output_length", min_length),
    ):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CheckpointError(f"{config_path}: testing.{key} must be a number")
    if max_length == 0:
        raise CheckpointError(
            f"{config_path}: testing.max_output_length 0 leaves nothing to decode"
        )
    forbidden = [specials["bos_id"], specials["pad_id"], *lang_tag_ids]
    if not testing.get("generate_unk", True):
        forbidden.append(specials["unk_id"])
    for key in ("repetition_penalty", "no_repeat_ngram_size"):
        if testing.get(key, -1) > 1:
            origin.note(f"testing.{key}: {testing[key]} is not applied by attnviz")
    try:
        fixed = max_length > 0
        rules = SearchRules(
            beam_stop="all_slots_ended",
            max_length_ratio=0.0 if fixed else 1.5,
            max_length_offset=float(max_length) if fixed else 0.0,
            min_length=int(min_length),
            forbidden=tuple(forbidden),
            length_norm="gnmt",
            length_penalty=float(alpha) if alpha > 0 else 0.0,
        )
    except AttnvizError as err:
        raise CheckpointError(f"{config_path}: testing: {err}") from err
    limit = f"{int(max_length)}" if max_length > 0 else "int(1.5 x source length incl. </s>)"
    origin.note(
        f"search: JoeyNMT beam; beam_alpha {alpha} -> gnmt length penalty "
        f"{rules.length_penalty}; at most {limit} tokens; no </s> before {min_length}; "
        f"never <s>, <pad>{'' if testing.get('generate_unk', True) else ', <unk>'}"
    )
    return rules


def _check_tokenizers(checkpoint: Checkpoint) -> None:
    """Build both tokenizers once so a missing package or bad file fails at import time."""
    checkpoint.tokenizers()
