"""Search indexes kept in step with the database: keywords (BM25), vectors (FAISS), centering, the chunk table."""
