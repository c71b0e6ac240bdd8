"""Ingestion: file readers, the ingest pipeline and the `kb` command line."""
