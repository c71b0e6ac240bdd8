"""A query's way to results: query, retrieve, expand, fuse, results, snippets, answer."""
