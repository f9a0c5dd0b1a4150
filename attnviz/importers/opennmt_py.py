"""OpenNMT-py 3.x RNN checkpoints: a ``.pt`` holding ``model``, ``generator``, ``vocab``, ``opt``.

Read with ``torch.load(weights_only=True)``, allowing exactly one class beyond plain data:
``argparse.Namespace``, which holds the options. The options map onto :class:`RNNConfig`,
the parameter names onto ours, and the vocabularies (plain token lists in 3.x) onto tokenizers.

Supported: ``rnn``/``brnn`` encoders; LSTM or GRU; any number of layers (the same on both
sides); ``bridge`` or not; the ``rnn`` decoder with or without ``input_feed``;
``global_attention`` ``mlp``, ``general`` or ``dot``; shared or separate embeddings and
generator; word vocabularies and SentencePiece pieces (``sentencepiece`` transform).

Refused, each with one line naming the option: other encoders and decoders (transformer, cnn,
mean, ggnn), ``rnn_type`` RNN/SRU, ``coverage_attn``, ``context_gate``, ``copy_attn``,
sparsemax, position encoding, source features, LoRA and quantized layers, weights stored
outside the ``.pt`` (safetensors), text transforms other than SentencePiece, and 1.x/2.x
checkpoints whose vocabulary is pickled torchtext objects (they cannot be read without
running code).

OpenNMT-py's facts this module relies on (read from its 3.5.1 source):

- special tokens: ``<blank>`` pads, ``<unk>``, ``<s>`` starts the target, ``</s>`` ends it;
  the source gets neither;
- ``mlp`` attention: ``vᵀ tanh(W_q q + b_q + W_c h_j)``, the output layer
  ``Linear([c; q])`` has a bias and no tanh; ``general``/``dot``: ``qᵀ W_in h`` / ``qᵀ h`` with
  a bias-free output layer followed by tanh;
- the decoder starts from each encoder layer's final state, directions concatenated; with
  ``bridge`` the states first go through ``relu(Linear)`` in groups (see RNNConfig);
- the generator is ``Linear(dec_hid_size, vocab)``, log_softmax is applied by the translator;
- ``onmt_translate`` defaults: at most ``min(250, int(1.25 N + 5))`` output tokens, scores are
  ``sum(log-probs) / (T + 1)``, a beam stops once its best candidate ends and ``n_best``
  hypotheses have (SearchRules ``best_ended``).
"""

from __future__ import annotations

import hashlib
import io
import pickletools
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.errors import AttnvizError, CheckpointError, MissingModelFile

if TYPE_CHECKING:
    from attnviz.checkpoint import Checkpoint

TOOLKIT = "OpenNMT-py"
REQUIRED_KEYS = ("model", "generator", "vocab", "opt")
PAD, UNK, BOS, EOS = "<blank>", "<unk>", "<s>", "</s>"
ATTENTIONS = {"mlp": "additive", "general": "general", "dot": "dot"}
RNN_TYPES = {"LSTM": "lstm", "GRU": "gru"}
#: onmt_translate's defaults (max_length 250, max_length_ratio 1.25, length_penalty avg)
SEARCH_RULES = {
    "max_length_ratio": 1.25,
    "max_length_offset": 5.0,
    "max_length_cap": 250,
    "length_offset": 1,
    "beam_stop": "best_ended",
}
#: transforms that change only training data, never the text at translation time
TRAINING_ONLY_TRANSFORMS = {"filtertoolong", "tokendrop", "tokenmask", "switchout", "clean"}
_SCAN_LIMIT = 64 * 1024 * 1024
_STRING_OPCODES = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}


# -- detection --------------------------------------------------------------------------------


def detect(path: Path) -> bool:
    """True for a PyTorch file whose pickle holds OpenNMT-py's keys and an argparse Namespace.

    Reads only the pickle's opcodes (no object is built), so it is cheap and safe.
    """
    try:
        strings, globals_ = _pickle_names(Path(path))
    except Exception:
        return False
    return set(REQUIRED_KEYS) <= strings and "argparse.Namespace" in globals_


def _pickle_names(path: Path) -> tuple[set[str], set[str]]:
    """Strings and global names in the pickle of a torch file (zip or legacy format)."""
    if not path.is_file():
        return set(), set()
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.rsplit("/", 1)[-1] == "data.pkl"]
            if len(members) != 1 or archive.getinfo(members[0]).file_size > _SCAN_LIMIT:
                return set(), set()
            data = archive.read(members[0])
        return _scan(data, pickles=1)
    with path.open("rb") as stream:
        data = stream.read(_SCAN_LIMIT)
    return _scan(data, pickles=4)  # legacy: magic number, protocol, system info, the object


def _scan(data: bytes, pickles: int) -> tuple[set[str], set[str]]:
    strings: set[str] = set()
    globals_: set[str] = set()
    stream = io.BytesIO(data)
    recent: list[str] = []
    for _ in range(pickles):
        try:
            for opcode, arg, _position in pickletools.genops(stream):
                if opcode.name in _STRING_OPCODES and isinstance(arg, str | bytes):
                    text = arg if isinstance(arg, str) else arg.decode("latin-1")
                    strings.add(text)
                    recent = [*recent[-1:], text]
                elif opcode.name == "GLOBAL" and isinstance(arg, str):
                    globals_.add(arg.replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(recent) == 2:
                    globals_.add(".".join(recent))
        except Exception:
            break
    return strings, globals_


# -- loading ----------------------------------------------------------------------------------


def load(
    path: Path,
    *,
    src_spm: str | Path | bytes | None = None,
    tgt_spm: str | Path | bytes | None = None,
) -> Checkpoint:
    """Read an OpenNMT-py checkpoint as an attnviz :class:`Checkpoint` (weights on the CPU).

    ``src_spm``/``tgt_spm``: the SentencePiece models (paths or bytes) of a model trained with
    the ``sentencepiece`` transform; by default the files its options name, if they exist.
    """
    from attnviz.checkpoint import Checkpoint

    path = Path(path)
    payload = _read(path)
    opt = _options(path, payload)
    vocab = _vocabularies(path, payload)
    _check_supported(path, opt, payload)
    config, mapping = _config(path, opt, vocab)
    state_dict = _state_dict(path, payload, config)
    src_tokenizer, tgt_tokenizer, files, token_lines = _tokenizers(
        path, opt, vocab, config, src_spm, tgt_spm
    )
    files = {path.name: _sha256_file(path), **files}
    metadata = {
        "origin": {
            "toolkit": TOOLKIT,
            "version": "3.x (vocabulary stored as token lists)",
            "files": files,
            "mapping": [*mapping, *token_lines, _search_line()],
        },
    }
    return Checkpoint(
        config=config,
        state_dict=state_dict,
        src_tokenizer=src_tokenizer,
        tgt_tokenizer=tgt_tokenizer,
        metadata=metadata,
        path=path,
        search=dict(SEARCH_RULES),
    )


def _read(path: Path) -> Any:
    """The checkpoint's content, with exactly one class allowed beyond plain data."""
    import argparse

    from attnviz.checkpoint import RefusedObject, read_payload

    try:
        return read_payload(path, allowed=(argparse.Namespace,))[0]
    except RefusedObject as err:
        if err.name.startswith(("torchtext.", "onmt.")):
            raise CheckpointError(
                f"{path}: an OpenNMT-py 1.x/2.x checkpoint: its vocabulary is pickled "
                f"{err.name.split('.')[0]} objects, which cannot be read without running code; "
                "convert it with OpenNMT-py 3.x's tools/convertv2_v3.py and load the result"
            ) from err
        raise CheckpointError(
            f"{path}: refused to load: besides its options (argparse.Namespace) it holds a "
            f"Python object ({err.name[:80]}) beyond plain data, which could run code"
        ) from err


def _options(path: Path, payload: Any) -> dict[str, Any]:
    import argparse

    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not an OpenNMT-py checkpoint (not a dict)")
    missing = [key for key in ("vocab", "opt") if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: not an OpenNMT-py checkpoint (no {', '.join(missing)})")
    if not isinstance(payload["opt"], argparse.Namespace):
        raise CheckpointError(f"{path}: its opt is not an argparse Namespace")
    opt = dict(vars(payload["opt"]))
    # OpenNMT-py derives these the same way when it loads a model
    if _number(opt.get("word_vec_size")) > 0:
        opt["src_word_vec_size"] = opt["tgt_word_vec_size"] = opt["word_vec_size"]
    if _number(opt.get("layers")) > 0:
        opt["enc_layers"] = opt["dec_layers"] = opt["layers"]
    if _number(opt.get("hidden_size")) > 0:
        opt["enc_hid_size"] = opt["dec_hid_size"] = opt["hidden_size"]
    return opt


def _number(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else -1


def _vocabularies(path: Path, payload: dict[str, Any]) -> dict[str, list[str]]:
    vocab = payload["vocab"]
    if not isinstance(vocab, dict):
        raise CheckpointError(f"{path}: its vocab is not a dict of token lists")
    result = {}
    for side in ("src", "tgt"):
        tokens = vocab.get(side)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise CheckpointError(f"{path}: vocab[{side!r}] is not a list of tokens")
        result[side] = tokens
    if vocab.get("src_feats"):
        raise CheckpointError(f"{path}: source features (src_feats) are not supported")
    return result


def _check_supported(path: Path, opt: dict[str, Any], payload: dict[str, Any]) -> None:
    """One CheckpointError naming the first option attnviz cannot represent."""

    def refuse(what: str) -> None:
        raise CheckpointError(f"{path}: {what} is not supported")

    if "model" not in payload or not isinstance(payload["model"], dict):
        refuse(f"save_format {opt.get('save_format', '?')} (weights outside the .pt file)")
    checks = [
        ("model_task", opt.get("model_task", "seq2seq") == "seq2seq"),
        ("encoder_type", opt.get("encoder_type") in ("rnn", "brnn")),
        ("decoder_type", opt.get("decoder_type") == "rnn"),
        ("rnn_type", opt.get("rnn_type") in RNN_TYPES),
        ("global_attention", opt.get("global_attention") in ATTENTIONS),
        ("global_attention_function", opt.get("global_attention_function", "softmax") == "softmax"),
        ("generator_function", opt.get("generator_function", "softmax") == "softmax"),
    ]
    for name, ok in checks:
        if not ok:
            refuse(f"{name} {opt.get(name)!s:.40}")
    for flag in ("coverage_attn", "copy_attn", "position_encoding", "lora_embedding"):
        if opt.get(flag):
            refuse(flag)
    if opt.get("context_gate"):
        refuse(f"context_gate {opt['context_gate']!s:.40}")
    for name in ("lora_layers", "quant_layers"):
        if opt.get(name):
            refuse(f"{name} {opt[name]!s:.60}")
    if _number(opt.get("n_src_feats")) > 0:
        refuse("source features (n_src_feats)")
    if opt.get("decoder_start_token", BOS) != BOS:
        refuse(f"decoder_start_token {opt['decoder_start_token']!s:.40}")
    for transform in sorted(_transforms(opt)):
        if transform != "sentencepiece" and transform not in TRAINING_ONLY_TRANSFORMS:
            refuse(f"the {transform!s:.40} transform (it changes text at translation time)")
    if opt.get("enc_layers") != opt.get("dec_layers"):
        refuse(f"enc_layers {opt.get('enc_layers')} with dec_layers {opt.get('dec_layers')}")
    if opt.get("enc_hid_size") != opt.get("dec_hid_size"):
        refuse(
            f"enc_hid_size {opt.get('enc_hid_size')} with dec_hid_size {opt.get('dec_hid_size')}"
        )
    if opt.get("src_word_vec_size") != opt.get("tgt_word_vec_size"):
        refuse(
            f"src_word_vec_size {opt.get('src_word_vec_size')} with tgt_word_vec_size "
            f"{opt.get('tgt_word_vec_size')}"
        )


def _transforms(opt: dict[str, Any]) -> set[str]:
    """Every transform the model was trained with (global and per corpus)."""
    names: set[str] = set()
    for value in (opt.get("transforms"), opt.get("_all_transform")):
        if isinstance(value, list | set | tuple):
            names.update(str(v) for v in value)
    data = opt.get("data")
    if isinstance(data, dict):
        for corpus in data.values():
            if isinstance(corpus, dict) and isinstance(corpus.get("transforms"), list):
                names.update(str(v) for v in corpus["transforms"])
    return names


def _special_ids(path: Path, vocab: dict[str, list[str]]) -> dict[str, int]:
    def index(side: str, token: str) -> int:
        try:
            return vocab[side].index(token)
        except ValueError:
            raise CheckpointError(f"{path}: the {side} vocabulary has no {token}") from None

    ids = {
        "pad_id": index("tgt", PAD),
        "unk_id": index("tgt", UNK),
        "bos_id": index("tgt", BOS),
        "eos_id": index("tgt", EOS),
    }
    for name, token in (("pad_id", PAD), ("unk_id", UNK)):
        if index("src", token) != ids[name]:
            raise CheckpointError(
                f"{path}: {token} has different ids in the source and target vocabularies, "
                "which is not supported"
            )
    return ids


def _config(path: Path, opt: dict[str, Any], vocab: dict[str, list[str]]):
    """(RNNConfig, mapping lines)."""
    from attnviz.families.rnn.model import RNNConfig

    brnn = opt["encoder_type"] == "brnn"
    directions = 2 if brnn else 1
    hidden = opt.get("enc_hid_size")
    layers = opt.get("enc_layers")
    embedding = opt.get("src_word_vec_size")
    for name, value in (("enc_hid_size", hidden), ("enc_layers", layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise CheckpointError(f"{path}: {name} {value!s:.20} is not a positive whole number")
    if not isinstance(embedding, int) or embedding < 1:
        raise CheckpointError(f"{path}: src_word_vec_size {embedding!s:.20} is not positive")
    if hidden % directions:
        raise CheckpointError(f"{path}: enc_hid_size {hidden} is odd for a brnn encoder")
    attention = opt["global_attention"]
    dropout = opt.get("dropout", 0.0)
    dropout = dropout[0] if isinstance(dropout, list) and dropout else dropout
    dropout = float(dropout) if isinstance(dropout, int | float) and 0 <= dropout < 1 else 0.0
    decoder_init = "grouped_relu_bridge" if opt.get("bridge") else "encoder_final"
    try:
        config = RNNConfig(
            src_vocab_size=len(vocab["src"]),
            tgt_vocab_size=len(vocab["tgt"]),
            embedding_size=embedding,
            hidden_size=hidden // directions,
            decoder_hidden_size=hidden,
            attention_size=hidden,
            attention=ATTENTIONS[attention],
            rnn=RNN_TYPES[opt["rnn_type"]],
            encoder_layers=layers,
            decoder_layers=layers,
            bidirectional=brnn,
            dropout=dropout,
            input_feeding=bool(opt.get("input_feed", 1)),
            attn_concat_order="context_first",
            attn_out_bias=attention == "mlp",
            attn_out_tanh=attention != "mlp",
            src_eos=False,
            attn_query_bias=attention == "mlp",
            decoder_init=decoder_init,
            **_special_ids(path, vocab),
        )
    except AttnvizError as err:
        raise CheckpointError(f"{path}: cannot map its options: {err}") from err
    shared = [name for name in ("share_embeddings", "share_decoder_embeddings") if opt.get(name)]
    mapping = [
        f"encoder_type {opt['encoder_type']}, rnn_type {opt['rnn_type']}, {layers} layer(s), "
        f"enc_hid_size {hidden} -> {'bidirectional ' if brnn else ''}{config.rnn} encoder, "
        f"hidden_size {config.hidden_size}{' per direction' if brnn else ''}",
        f"word_vec_size {embedding} -> embedding_size {embedding}",
        f"global_attention {attention} -> {config.attention} attention"
        + (
            " with a bias on the query projection; attentional layer with bias, no tanh"
            if attention == "mlp"
            else "; attentional layer tanh(W [context; state]) without bias"
        ),
        f"bridge {bool(opt.get('bridge'))} -> decoder_init {decoder_init}",
        f"input_feed {opt.get('input_feed', 1)} -> input_feeding {config.input_feeding}",
        f"{', '.join(shared) or 'no shared embeddings'} -> weights copied into separate matrices"
        if shared
        else "separate embeddings and generator",
        f"generator Linear({hidden}, {config.tgt_vocab_size}) -> decoder.output; "
        "log_softmax applied when decoding",
        f"special tokens: {PAD} (pad) {config.pad_id}, {UNK} {config.unk_id}, {BOS} "
        f"{config.bos_id}, {EOS} {config.eos_id}; no </s> on the source",
    ]
    return config, mapping


def _state_dict(path: Path, payload: dict[str, Any], config) -> dict[str, Any]:
    """OpenNMT-py parameter names and layouts -> attnviz's (float32 tensors)."""
    import torch

    given: dict[str, Any] = dict(payload["model"])
    generator = payload.get("generator")
    if not isinstance(generator, dict):
        raise CheckpointError(f"{path}: its generator is not a state dict")
    given.update({f"generator.{key}": value for key, value in generator.items()})
    for key, value in given.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: weight {key!s:.80} is not a tensor")
    out: dict[str, Any] = {}

    def move(source: str, target: str, transform=None) -> None:
        if source not in given:
            raise CheckpointError(f"{path}: lacks the weight {source}")
        value = given.pop(source)
        if not value.dtype.is_floating_point:
            raise CheckpointError(f"{path}: weight {source} is not floating point")
        value = value.to(torch.float32, copy=True)  # off the memory-mapped file
        out[target] = transform(value).contiguous() if transform is not None else value

    move("encoder.embeddings.make_embedding.emb_luts.0.weight", "encoder.embedding.weight")
    move("decoder.embeddings.make_embedding.emb_luts.0.weight", "decoder.embedding.weight")
    directions = ("", "_reverse") if config.bidirectional else ("",)
    parts = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    for layer in range(config.encoder_layers):
        for part in parts:
            for suffix in directions:
                name = f"encoder.rnn.{part}_l{layer}{suffix}"
                move(name, name)
    for layer in range(config.decoder_layers):
        for part in parts:
            source = (
                f"decoder.rnn.layers.{layer}.{part}"  # StackedLSTM/StackedGRU cells
                if config.input_feeding
                else f"decoder.rnn.{part}_l{layer}"
            )
            move(source, f"decoder.rnn.{part}_l{layer}")
    if config.attention == "additive":
        move("decoder.attn.linear_query.weight", "decoder.attention.W.weight")
        move("decoder.attn.linear_query.bias", "decoder.attention.W.bias")
        move("decoder.attn.linear_context.weight", "decoder.attention.U.weight")
        move("decoder.attn.v.weight", "decoder.attention.v", lambda w: w.reshape(-1))
    elif config.attention == "general":
        # (W_in q) . h == q . (W_inᵀ h): attnviz projects the keys once per sentence
        move("decoder.attn.linear_in.weight", "decoder.attention.W_a.weight", lambda w: w.t())
    move("decoder.attn.linear_out.weight", "decoder.combine.weight")
    if config.attn_out_bias:
        move("decoder.attn.linear_out.bias", "decoder.combine.bias")
    if config.decoder_init == "grouped_relu_bridge":
        move("encoder.bridge.0.weight", "bridge.hidden.weight")
        move("encoder.bridge.0.bias", "bridge.hidden.bias")
        if config.rnn == "lstm":
            move("encoder.bridge.1.weight", "bridge.cell.weight")
            move("encoder.bridge.1.bias", "bridge.cell.bias")
    move("generator.weight", "decoder.output.weight")
    move("generator.bias", "decoder.output.bias")
    if given:
        names = sorted(given)
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        raise CheckpointError(
            f"{path}: weights attnviz cannot place: {', '.join(n[:60] for n in names[:3])}{more}"
        )
    return out


def _tokenizers(path: Path, opt: dict[str, Any], vocab, config, src_spm, tgt_spm):
    """(source spec, target spec, {file name: sha256}, mapping lines).

    Only ``</s>`` is left out of detokenized text: OpenNMT-py prints any other token it
    predicts, ``<s>`` and ``<blank>`` included.
    """
    from attnviz.tokenizer import SentencePieceVocabularyTokenizer, VocabularyTokenizer

    options = {"unk_id": config.unk_id, "specials": (config.eos_id,)}
    uses_spm = "sentencepiece" in _transforms(opt)
    specs, files, lines = [], {}, []
    for side, given in (("src", src_spm), ("tgt", tgt_spm)):
        tokens = vocab[side]
        if not uses_spm:
            if given is not None:
                raise CheckpointError(
                    f"{path}: the model was not trained on SentencePiece pieces; "
                    f"a {'source' if side == 'src' else 'target'} SentencePiece model does "
                    "not apply"
                )
            specs.append(VocabularyTokenizer(tokens, **options).to_spec())
            lines.append(
                f"{side} tokens: words split on whitespace, {len(tokens)} in the vocabulary"
            )
            continue
        name, model = _sentencepiece_model(path, opt, side, given)
        tokenizer = SentencePieceVocabularyTokenizer(
            tokens, model=model, raw_decode=True, **options
        )
        specs.append(tokenizer.to_spec())
        files[name] = _sha256(model)
        lines.append(
            f"{side} tokens: SentencePiece pieces of {name}, numbered by the checkpoint's "
            f"vocabulary of {len(tokens)}"
        )
    return specs[0], specs[1], files, lines


def _sentencepiece_model(path: Path, opt: dict[str, Any], side: str, given) -> tuple[str, bytes]:
    from attnviz.errors import TokenizerError
    from attnviz.tokenizer import SentencePieceTokenizer

    which = "source" if side == "src" else "target"
    if isinstance(given, bytes | bytearray):
        name, model = f"{which} SentencePiece model", bytes(given)
    else:
        named = given if given is not None else opt.get(f"{side}_subword_model")
        if not named or not Path(str(named)).is_file():
            raise MissingModelFile(
                f"{path}: the model was trained on pieces of the {which} SentencePiece model "
                f"{str(named or '(not named)')[:200]}, which is not there",
                f"{side}_spm",
            )
        name, model = Path(str(named)).name, Path(str(named)).read_bytes()
    try:
        SentencePieceTokenizer(model)
    except TokenizerError as err:
        raise CheckpointError(f"{path}: {which} SentencePiece model {name}: {err}") from err
    return name, model


def _search_line() -> str:
    return (
        "search: onmt_translate's defaults: at most min(250, int(1.25 N + 5)) tokens, score "
        "sum(log-probs) / (T + 1), a beam stops when its best candidate ends and n-best have"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
