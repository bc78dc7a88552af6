"""Words -> WordNet noun synsets (`scaling data vocab --synsets`), the canonicalisation SWAG and CatLIP use.

A word maps to the first (most frequent) noun synset of its base form (WordNet's morphy: `dresses` -> `dress`
-> `dress.n.01`); a word with no noun sense is dropped. WordNet comes from NLTK's reader over either NLTK's
data (`python -m nltk.downloader wordnet`) or Debian's `wordnet-base` files (/usr/share/wordnet). The WordNet
version is part of the normalisation: vocab files record it, and the reader refuses another.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

from scaling.config import ConfigError

DEBIAN_WORDNET = "/usr/share/wordnet"
MISSING = (
    "--synsets needs a WordNet: `pip install nltk` and then `python -m nltk.downloader wordnet` (or, on "
    "Debian/Ubuntu, `apt-get install wordnet-base`); or build the vocabulary without --synsets."
)


@lru_cache(maxsize=1)
def _reader():  # noqa: ANN202 - nltk's WordNetCorpusReader
    try:
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError as e:
        raise ConfigError(MISSING) from e
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except LookupError:
        pass
    if os.path.isfile(os.path.join(DEBIAN_WORDNET, "index.noun")):
        return WordNetCorpusReader(DEBIAN_WORDNET, None)
    raise ConfigError(MISSING)


def wordnet_version() -> str:
    return str(_reader().get_version())


def noun_synsets() -> Callable[[str], str | None]:
    """word -> its first noun synset's name (`dog.n.01`), or None."""
    wn = _reader()

    def lookup(word: str) -> str | None:
        synsets = wn.synsets(word.replace("-", "_"), pos="n")
        return synsets[0].name() if synsets else None

    return lookup
