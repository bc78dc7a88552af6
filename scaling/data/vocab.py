"""The caption vocabulary file (`scaling data vocab` writes it, `data.caption_vocab` reads it): terms -> label ids.

    {"format": "scaling.caption_vocab/1", "normalizer": "scaling.captions/1",
     "options": {"hashtags": true, "plurals": true, "stop_words": "english", "min_length": 2, "synsets": false},
     "sha256": "<16 hex>", "terms": [{"term": "shirt", "count": 5120, "df": 5003}, ...],   # label id = index
     "captions": ..., "samples": ..., "source": ..., "sketch": {...}, ...}              # how it was built

Terms are sorted by document frequency (most frequent first). `sha256` fingerprints what decides the labels
(normaliser, options, terms in order): config.yaml records it, and a resume with another vocabulary is refused.
A rank reads the file once, in its main process; its worker processes receive the term -> id table with the
reader, so a job of 1,024 ranks opens it 1,024 times, whatever the number of workers or shards.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaling.config import ConfigError
from scaling.data.captions import NORMALIZER, Normalizer, TermOptions
from scaling.data.config import DataConfig

FORMAT = "scaling.caption_vocab/1"


def vocab_hash(options: TermOptions, terms: list[str]) -> str:
    data = json.dumps({"normalizer": NORMALIZER, "options": options.as_dict(), "terms": terms}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


@dataclass
class CaptionVocab:
    """Label ids of captions: labels(text) = the ids of its terms in the vocabulary, in order, each once."""

    terms: list[str]
    options: TermOptions = field(default_factory=TermOptions)
    path: str = ""

    def __post_init__(self) -> None:
        self.ids = {t: i for i, t in enumerate(self.terms)}
        self.sha256 = vocab_hash(self.options, self.terms)
        self._normalizer: Normalizer | None = None

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def normalizer(self) -> Normalizer:
        if self._normalizer is None:  # built lazily: a WordNet is loaded only where captions are labelled
            self._normalizer = Normalizer(self.options)
        return self._normalizer

    def labels(self, text: str) -> list[int]:
        ids = self.ids
        return [ids[t] for t in self.normalizer.terms(text) if t in ids]

    def __getstate__(self) -> dict[str, Any]:  # workers rebuild the normaliser (and its cache) themselves
        return {"terms": self.terms, "options": self.options, "path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]


def load_vocab(path: str) -> CaptionVocab:
    """Read and check a vocabulary file: one open; every problem is a ConfigError naming the fix."""
    rebuild = f"rebuild it with `scaling data vocab SHARDS --out {path}`"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError as e:
        raise ConfigError(f"data.caption_vocab {path!r} does not exist: build it with "
                          f"`scaling data vocab SHARDS --out {path}`.") from e
    except OSError as e:
        raise ConfigError(f"data.caption_vocab {path!r} cannot be read ({e.strerror}).") from e
    if not raw.strip():
        raise ConfigError(f"data.caption_vocab {path!r} is empty: {rebuild}.")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(f"data.caption_vocab {path!r} is not JSON ({e}): {rebuild}.") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("terms"), list):
        raise ConfigError(f"data.caption_vocab {path!r} is not a {FORMAT} file (keys format, terms): {rebuild}.")
    if data.get("normalizer") != NORMALIZER:
        raise ConfigError(
            f"data.caption_vocab {path!r} was built with normaliser {data.get('normalizer')!r} and this reader "
            f"labels with {NORMALIZER!r}: {rebuild}."
        )
    options = TermOptions.from_dict(data.get("options"), path)
    entries = data["terms"]
    terms = [e.get("term") if isinstance(e, dict) else None for e in entries]
    if not terms:
        raise ConfigError(f"data.caption_vocab {path!r} holds no terms: {rebuild} from captions that have some.")
    bad = next((t for t in terms if not isinstance(t, str) or not t), "")
    if bad != "" or len(set(terms)) != len(terms):
        what = f"a term that is not a word ({bad!r})" if bad != "" else "a term twice"
        raise ConfigError(f"data.caption_vocab {path!r} is malformed ({what}): {rebuild}.")
    if options.synsets:
        from scaling.data.wordnet import wordnet_version

        if str(data.get("wordnet")) != wordnet_version():
            raise ConfigError(f"data.caption_vocab {path!r} maps words to WordNet {data.get('wordnet')} synsets and "
                              f"this machine has WordNet {wordnet_version()}: {rebuild}.")
    vocab = CaptionVocab(terms, options, path)
    if not options.synsets:  # terms must be what the recorded options make of them
        normalizer = vocab.normalizer
        off = next((t for t in terms if normalizer.terms(t) != [t]), None)
        if off is not None:
            raise ConfigError(
                f"data.caption_vocab {path!r}: its term {off!r} becomes {normalizer.terms(off)} under its own "
                f"options {options.as_dict()}, so it was built with other options than the reader's (or "
                f"edited): {rebuild}."
            )
    return vocab


def record_vocab(cfg: DataConfig, vocab: CaptionVocab, num_classes: int) -> None:
    """Check the caption vocabulary against the config, then record its hash in the config (config.yaml and the
    resume check read it there: a resume with another vocabulary changes data.caption_vocab_hash)."""
    if cfg.caption_vocab_hash and cfg.caption_vocab_hash != vocab.sha256:
        raise ConfigError(
            f"data.caption_vocab {vocab.path!r} has hash {vocab.sha256} but the config records "
            f"data.caption_vocab_hash={cfg.caption_vocab_hash} (another vocabulary): point data.caption_vocab at "
            "that one, or drop data.caption_vocab_hash to train a new run with this one."
        )
    if num_classes < len(vocab):
        raise ConfigError(
            f"data.num_classes={num_classes} is smaller than the {len(vocab)} terms of data.caption_vocab "
            f"{vocab.path!r}: set data.num_classes=0 (the vocabulary's size) or build a smaller vocabulary "
            "(`scaling data vocab --size K`)."
        )
    cfg.caption_vocab_hash = vocab.sha256


def write_vocab(path: str, terms: list[tuple[str, int, int]], options: TermOptions, **info: Any) -> dict[str, Any]:
    """Write the file atomically (a temporary name, then a rename); returns its header (all but the terms)."""
    names = [t for t, _, _ in terms]
    if options.synsets:
        from scaling.data.wordnet import wordnet_version

        info = {"wordnet": wordnet_version(), **info}
    data = {
        "format": FORMAT,
        "normalizer": NORMALIZER,
        "options": options.as_dict(),
        "sha256": vocab_hash(options, names),
        "size": len(terms),
        **info,
    }
    # Readable: the header indented, then one term per line.
    lines = ",\n".join(json.dumps({"term": t, "count": c, "df": d}, ensure_ascii=False) for t, c, d in terms)
    text = json.dumps(data, indent=1, ensure_ascii=False)[:-2] + f',\n "terms": [\n{lines}\n ]\n}}\n'
    tmp = Path(f"{path}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return data
