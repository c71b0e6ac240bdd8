"""The embedding model: the bundled multilingual-e5-small and any configured sentence-transformers model."""
