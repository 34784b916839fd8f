"""Build small random-weight Whisper models in CTranslate2 format.

The real weights cannot be downloaded on the machines scribe is developed and tested on,
so tests and benchmarks use a model whose architecture is Whisper's but whose weights are
random. Its text is nonsense; loading, decoding, VAD, timestamps, batching and every
service path are real.

Two tricks keep decoding short and cheap:
- the output projection is scaled so logits are peaked: the top token carries most of the
  probability mass, so ``avg_logprob`` stays above faster-whisper's fallback threshold and
  a window is not re-decoded at every temperature;
- the end-of-text logit gets a bias, so a window ends after a handful of tokens instead of
  running to the 448-token maximum.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tokenizers
from ctranslate2.specs import whisper_spec
from faster_whisper.tokenizer import _LANGUAGE_CODES

from transcription.engine.audio import SAMPLE_RATE_HZ

ENCODER_POSITIONS = 1500
DECODER_POSITIONS = 448
TIMESTAMP_TOKENS = 1501  # <|0.00|> … <|30.00|> in 20 ms steps


@dataclass(frozen=True)
class TestModelSize:
    d_model: int
    heads: int
    encoder_layers: int
    decoder_layers: int
    n_mels: int = 80


SIZES = {
    # Whisper tiny's real dimensions: encoder cost is that of a real tiny model.
    "tiny": TestModelSize(d_model=384, heads=6, encoder_layers=4, decoder_layers=4),
    # Smaller still, for tests that only need the code paths.
    "micro": TestModelSize(d_model=64, heads=2, encoder_layers=2, decoder_layers=2),
    # large-v3's 128 mel bins, for checking feature-size handling.
    "micro-128": TestModelSize(d_model=64, heads=2, encoder_layers=2, decoder_layers=2, n_mels=128),
}

# Peak logits (std of a logit) and the end-of-text bias, in the same units.
LOGIT_STD = 6.0
EOT_BIAS = 8.0


def _byte_level_alphabet() -> list[str]:
    return sorted(tokenizers.pre_tokenizers.ByteLevel.alphabet(), key=_byte_of)


def _byte_of(char: str) -> int:
    # GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to 256+.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    if ord(char) in printable:
        return ord(char)
    others = [b for b in range(256) if b not in printable]
    return others[ord(char) - 256]


def build_tokenizer() -> tokenizers.Tokenizer:
    """Return a byte-level BPE tokenizer with Whisper's special tokens, built offline."""
    alphabet = _byte_level_alphabet()
    space = "Ġ"
    # Space-prefixed words and punctuation as single tokens, as in Whisper's vocabulary:
    # faster-whisper suppresses the first token of " -" and " '", which must not be a
    # bare space or no word boundary could ever be decoded.
    merges = [(space, c) for c in "abcdefghijklmnopqrstuvwxyz-'"]
    vocab = {char: index for index, char in enumerate(alphabet)}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|startoftranscript|>"]
    specials += [f"<|{code}|>" for code in _LANGUAGE_CODES]
    specials += [
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nospeech|>",
        "<|notimestamps|>",
    ]
    specials += [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMP_TOKENS)]
    tokenizer.add_special_tokens([tokenizers.AddedToken(t, special=True) for t in specials])
    return tokenizer


def _sinusoids(length: int, channels: int) -> np.ndarray:
    log_timescale_increment = np.log(10000) / (channels // 2 - 1)
    inv_timescales = np.exp(-log_timescale_increment * np.arange(channels // 2))
    scaled_time = np.arange(length)[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled_time), np.cos(scaled_time)], axis=1)


class _Weights:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape: int, std: float = 0.02) -> np.ndarray:
        return (self.rng.standard_normal(shape) * std).astype(np.float32)

    def linear(self, spec, out_dim: int, in_dim: int, std: float = 0.02) -> None:
        spec.weight = self.normal(out_dim, in_dim, std=std)
        spec.bias = np.zeros(out_dim, dtype=np.float32)

    @staticmethod
    def norm(spec, dim: int) -> None:
        spec.gamma = np.ones(dim, dtype=np.float32)
        spec.beta = np.zeros(dim, dtype=np.float32)

    def attention(self, spec, d: int, *, cross: bool) -> None:
        self.norm(spec.layer_norm, d)
        if cross:
            self.linear(spec.linear[0], d, d)
            self.linear(spec.linear[1], 2 * d, d)
            self.linear(spec.linear[2], d, d)
        else:
            self.linear(spec.linear[0], 3 * d, d)
            self.linear(spec.linear[1], d, d)

    def ffn(self, spec, d: int) -> None:
        self.norm(spec.layer_norm, d)
        self.linear(spec.linear_0, 4 * d, d)
        self.linear(spec.linear_1, d, 4 * d)


def build_test_model(
    output_dir: Path,
    *,
    size: str = "micro",
    tokenizer_dir: Path | None = None,
    seed: int = 0,
) -> Path:
    """Write a random-weight Whisper model to ``output_dir`` and return the path.

    ``tokenizer_dir`` may point at a real Whisper ``tokenizer.json`` (the vocabulary then
    has Whisper's 51865 tokens); by default a small offline byte-level tokenizer is used.
    """
    dims = SIZES[size]
    if tokenizer_dir is not None:
        tokenizer = tokenizers.Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
    else:
        tokenizer = build_tokenizer()
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    tokens = [tokenizer.id_to_token(i) for i in range(vocab_size)]
    eot = tokenizer.token_to_id("<|endoftext|>")

    spec = whisper_spec.WhisperSpec(
        dims.encoder_layers, dims.heads, dims.decoder_layers, dims.heads
    )
    w = _Weights(seed)
    # The encoder draws from the generator first: a seed keeps giving the same model.
    _fill_encoder(spec.encoder, w, dims)
    _fill_decoder(spec.decoder, w, dims, vocab_size, eot=eot, printable=tokenizer_dir is None)

    spec.register_vocabulary(tokens)
    lang_ids = [tokenizer.token_to_id(f"<|{code}|>") for code in _LANGUAGE_CODES]
    spec.config.lang_ids = [i for i in lang_ids if i is not None]
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = [eot]
    spec.config.alignment_heads = list(
        itertools.product(range(dims.decoder_layers // 2, dims.decoder_layers), range(dims.heads))
    )
    spec.validate()
    spec.optimize(quantization=None)
    return _save(spec, tokenizer, dims, Path(output_dir))


def _fill_encoder(encoder, w: _Weights, dims: TestModelSize) -> None:
    d = dims.d_model
    encoder.conv1.weight = w.normal(d, dims.n_mels, 3, std=0.1)
    encoder.conv1.bias = np.zeros(d, dtype=np.float32)
    encoder.conv2.weight = w.normal(d, d, 3, std=0.1)
    encoder.conv2.bias = np.zeros(d, dtype=np.float32)
    encoder.position_encodings.encodings = _sinusoids(ENCODER_POSITIONS, d).astype(np.float32)
    w.norm(encoder.layer_norm, d)
    for layer in encoder.layer:
        w.attention(layer.self_attention, d, cross=False)
        w.ffn(layer.ffn, d)


def _fill_decoder(
    decoder, w: _Weights, dims: TestModelSize, vocab_size: int, *, eot: int | None, printable: bool
) -> None:
    d = dims.d_model
    decoder.embeddings.weight = w.normal(vocab_size, d, std=1.0)
    decoder.position_encodings.encodings = w.normal(DECODER_POSITIONS, d, std=1.0)
    w.norm(decoder.layer_norm, d)
    for layer in decoder.layer:
        w.attention(layer.self_attention, d, cross=False)
        w.attention(layer.attention, d, cross=True)
        w.ffn(layer.ffn, d)
    # The final layer norm makes the hidden state unit-variance per channel, so a weight
    # std of LOGIT_STD / sqrt(d) gives logits with a std of LOGIT_STD.
    decoder.projection.weight = w.normal(vocab_size, d, std=LOGIT_STD / np.sqrt(d))
    bias = np.zeros(vocab_size, dtype=np.float32)
    bias[eot] = EOT_BIAS
    if printable:
        # Keep the nonsense printable: no control bytes, no stray UTF-8 continuation bytes.
        # (A bias, not config.suppress_ids: faster-whisper passes its own suppress list.)
        bias[[b for b in range(256) if b < 0x20 or b >= 0x7F]] = -1e4
    decoder.projection.bias = bias


def _save(
    spec: whisper_spec.WhisperSpec,
    tokenizer: tokenizers.Tokenizer,
    dims: TestModelSize,
    output_dir: Path,
) -> Path:
    # Write into a sibling temp dir and rename, so a half-written model is never seen.
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}-"))
    try:
        spec.save(str(staging))
        tokenizer.save(str(staging / "tokenizer.json"))
        preprocessor = {
            "feature_size": dims.n_mels,
            "sampling_rate": SAMPLE_RATE_HZ,
            "hop_length": 160,
            "chunk_length": 30,
            "n_fft": 400,
        }
        (staging / "preprocessor_config.json").write_text(json.dumps(preprocessor))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir
