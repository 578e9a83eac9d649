"""Query embeddings for routing: the Embedder protocol, built-in embedders and an on-disk cache."""

from moa_lab.embedding._cache import EmbeddingCache, Memoized
from moa_lab.embedding._embedder import (
    ROUTER_EMBEDDER,
    Embedder,
    HashEmbedder,
    MiniLMEmbedder,
    build_embedder,
    embed,
    embedder,
)

__all__ = ["ROUTER_EMBEDDER", "Embedder", "EmbeddingCache", "HashEmbedder", "Memoized", "MiniLMEmbedder", "build_embedder", "embed", "embedder"]
