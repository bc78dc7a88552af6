"""Captions -> terms: the one normaliser that `scaling data vocab` counts with and the reader labels with.

A term is a hashtag as written (`#summervibes`, case folded) or a content word: case folded, Unicode NFKC, URLs
and punctuation removed (inner hyphens kept: `t-shirt`), a possessive `'s` dropped, English stop-words,
numbers and words shorter than `min_length` dropped, and a light plural rule (`dresses` -> `dress`, `boots`
-> `boot`, `berries` -> `berry`; `glass`, `bus`, `iris` are left alone). With `synsets`, a content word
becomes its first WordNet noun synset (`dog.n.01`; wordnet.py) and words WordNet has no noun for are dropped.
`terms(text)` returns a caption's distinct terms in order of first appearance: a caption counts once per term
(its document frequency) and labels a sample once per term (soft targets 1/k over its k terms).

The options and NORMALIZER (bumped whenever the rules change) are written into every vocabulary file and
checked when one is read, so training always maps captions with the rules the vocabulary was counted with.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any

from scaling.config import ConfigError

NORMALIZER = "scaling.captions/1"
CAPTION_KEYS = ("caption", "text")  # img2dataset's KEY.json fields that hold the caption
MEMO_LIMIT = 1 << 18  # piece -> terms cache entries before the cache is emptied (about 40 MB at most)

# NLTK's English stop-word list, plus the same contractions without their apostrophe and URL pieces.
STOP_WORDS = frozenset(
    """
    i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her hers
    herself it its itself they them their theirs themselves what which who whom this that these those am is
    are was were be been being have has had having do does did doing a an the and but if or because as until
    while of at by for with about against between into through during before after above below to from up
    down in out on off over under again further then once here there when where why how all any both each few
    more most other some such no nor not only own same so than too very s t can will just don should now d ll
    m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn needn shan shouldn wasn weren won
    wouldn dont cant wont isnt arent wasnt werent doesnt didnt hasnt havent hadnt shouldnt wouldnt couldnt
    youre youve youll youd shes thats theyre theyve theyll ive im id ill lets http https www com
    """.split()
)
# A hashtag, or a word: letters/digits joined by inner hyphens or apostrophes (underscores split words).
_TOKEN = re.compile(r"#[^\W_]\w*|[^\W_]+(?:['\-][^\W_]+)*")
_NO_PLURAL = ("ss", "us", "is")  # glass, bus, iris: an s that is not a plural
_ES_PLURAL = ("sses", "shes", "ches", "xes", "zes")  # dresses, brushes, watches, boxes, quizzes


@dataclass(frozen=True)
class TermOptions:
    """How captions become terms; recorded in the vocabulary file and reused by the reader."""

    hashtags: bool = True  # keep hashtags as terms (False: drop them)
    plurals: bool = True  # the light plural rule above
    stop_words: str = "english"  # "english" or "none"
    min_length: int = 2  # shorter content words are dropped
    synsets: bool = False  # map content words to WordNet noun synsets (needs a WordNet; see wordnet.py)

    def __post_init__(self) -> None:
        if self.stop_words not in ("english", "none"):
            raise ConfigError(f"stop_words={self.stop_words!r}: use `english` or `none`.")
        if isinstance(self.min_length, bool) or not isinstance(self.min_length, int) or self.min_length < 1:
            raise ConfigError(f"--min-length {self.min_length!r}: must be an integer >= 1.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TermOptions:
        """The options a vocabulary file records; unknown or missing keys mean other rules built it."""
        names = set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or set(data) != names:
            raise ConfigError(
                f"{where} was built with other normalisation options ({json.dumps(data)}) than this reader "
                f"knows ({', '.join(sorted(names))}): rebuild it with `scaling data vocab SHARDS --out {where}`."
            )
        try:
            return cls(**data)
        except (TypeError, ConfigError) as e:
            raise ConfigError(
                f"{where}: its normalisation options are invalid ({e}); rebuild it with `scaling data vocab`."
            ) from e


def _has_letter(word: str) -> bool:
    return word.isalpha() or any(c.isalpha() for c in word)


def singular(word: str) -> str:
    """The light plural rule: berries -> berry, dresses -> dress, boots -> boot; glass, bus, iris stay."""
    if len(word) <= 3 or not word.endswith("s") or word.endswith(_NO_PLURAL):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(_ES_PLURAL):
        return word[:-2]
    return word[:-1]


class Normalizer:
    """terms(text) -> distinct terms in order of first appearance. A caption is split at white space and each
    piece's terms are cached (`dress,` -> ("dress",); `t-shirt/top` -> ("t-shirt", "top")): the words of
    captions follow Zipf's law, so the cache answers almost every piece and a caption of known words costs a
    few C loops, no Python per word."""

    def __init__(self, options: TermOptions | None = None) -> None:
        self.options = options or TermOptions()
        self._stop = STOP_WORDS if self.options.stop_words == "english" else frozenset()
        self._synsets = None
        if self.options.synsets:
            from scaling.data.wordnet import noun_synsets

            self._synsets = noun_synsets()
        self._memo: dict[str, tuple[str, ...]] = {}

    def _term(self, token: str) -> str | None:
        if token[0] == "#":
            return token if self.options.hashtags and len(token) > 1 else None
        if "'" in token:
            token = token[:-2] if token.endswith("'s") else token
            token = token.replace("'", "")
        if token in self._stop:
            return None
        if self._synsets is not None:
            return self._synsets(token) if len(token) >= self.options.min_length else None
        # The checks run on the result too, so a term is its own term (vocab.py checks files with that).
        word = singular(token) if self.options.plurals else token
        if word in self._stop or len(word) < self.options.min_length or not _has_letter(word):
            return None
        return word

    def _piece(self, piece: str) -> tuple[str, ...]:
        """The terms of one white-space-free piece of a (case-folded) caption; a URL has none."""
        if piece.isalpha():  # a plain word, the common case: no tokenising
            term = self._term(piece)
            return () if term is None else (term,)
        if "://" in piece or piece.startswith("www."):
            return ()
        terms = (self._term(t) for t in _TOKEN.findall(piece.replace("_", " ")))
        return tuple(t for t in terms if t is not None)

    def term_list(self, text: str) -> list[str]:
        """Every term of `text` in order, repeats kept (stop-words, numbers, URLs... dropped)."""
        if text.isascii():
            pieces = text.lower().split()
        else:
            pieces = unicodedata.normalize("NFKC", text).replace("\u2019", "'").casefold().split()
        memo = self._memo
        new = set(pieces).difference(memo)
        if new:
            if len(memo) + len(new) > MEMO_LIMIT:
                memo.clear()
                new = set(pieces)
            for piece in new:
                memo[piece] = self._piece(piece)
        return list(chain.from_iterable(map(memo.__getitem__, pieces)))

    def terms(self, text: str) -> list[str]:
        """The distinct terms of `text`, in order of first appearance."""
        return list(dict.fromkeys(self.term_list(text)))


def caption_of(fields: dict[str, bytes]) -> str | None:
    """The caption of a sample: its `.txt` member, else the `caption` or `text` field of its `.json`
    (img2dataset writes both). None when the sample has neither (an empty caption is "")."""
    if "txt" in fields:
        return fields["txt"].decode("utf-8", errors="replace")
    if "json" in fields:
        try:
            meta = json.loads(fields["json"])
        except ValueError:
            return None
        if isinstance(meta, dict):
            for key in CAPTION_KEYS:
                value = meta.get(key)
                if isinstance(value, str):
                    return value
    return None
