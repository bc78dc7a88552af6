"""Words -> WordNet noun synsets (`scaling data vocab --synsets`), the canonicalisation SWAG and CatLIP use.

A word maps to the first (most frequent) noun synset of its base form (WordNet's morphy: `dresses` -> `dress`
-> `dress.n.01`); a word with no noun sense is dropped. WordNet comes from NLTK with its data
(`pip install nltk && python -m nltk.downloader wordnet`; Debian's `wordnet-base` files lack NLTK's `lexnames`).
The WordNet version is part of the normalisation: vocab files record it, and the reader refuses another.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from scaling.config import ConfigError

MISSING = (
    "--synsets needs a WordNet: `pip install nltk` and then `python -m nltk.downloader wordnet`; or build the "
    "vocabulary without --synsets."
)


@lru_cache(maxsize=1)
def _reader():  # noqa: ANN202 - nltk's WordNetCorpusReader
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return wordnet
    except (ImportError, LookupError, OSError):
        pass
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
