"""A query's way to results, one module per step, in the order the data flows:

query -> retrieve -> expand -> fuse -> results -> snippets -> answer

- `query`: the text cleaned and cut, its language, its keyword terms.
- `retrieve`: candidates from the keyword index (BM25) and the vector index, filters applied inside.
- `expand`: the query vector moved toward the best passage of a first pass (reaches other languages).
- `fuse`: one ranking from both candidate lists, by score; keyword evidence lent across languages.
- `results`: chunks grouped per document, rows fetched, personal data masked, ranks explained.
- `snippets`: the sentences of a passage that show the query's terms.
- `answer`: the one or two sentences that answer a question, with a confidence, or none.

`pipeline` calls the steps in order (`search`, `search_text`); `types` holds the
request and response they pass along; `weights` holds every ranking weight and
threshold, for search, answers and the services that rank (cases, catalog, collections).
"""
