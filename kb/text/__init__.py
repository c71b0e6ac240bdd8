"""Text before it is indexed: languages, cleaning, sentences, chunks, keyword analysis, personal data."""
