"""Query embeddings for routing: the Embedder protocol, built-in embedders and an on-disk cache."""

from moa_lab.embedding._cache import EmbeddingCache, Memoized
from moa_lab.embedding._embedder import (
    Embedder,
    HashEmbedder,
    MiniLMEmbedder,
    build_embedder,
    embed,
    embedder,
)

__all__ = ["Embedder", "EmbeddingCache", "HashEmbedder", "Memoized", "MiniLMEmbedder", "build_embedder", "embed", "embedder"]
