"""The OpenAPI 3.1 description of /api/v1 and the health checks; tests validate real responses against it."""

from __future__ import annotations

from functools import lru_cache

STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
NULLABLE_STRING = {"type": ["string", "null"]}
LANG = {"type": "string", "description": "th, zh, en, or und when unknown"}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict, required: list[str] | None = None) -> dict:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERROR = _json(_ref("Error"), "an error, with a code and a message that says what to do")

HEADING_PATH = {"type": "array", "items": STRING,
                "description": "where the passage sits: document title, section, subsection (outermost first)"}

SCHEMAS = {
    "Error": _object({"error": _object({"code": STRING, "message": STRING})}),
    "Passage": _object({
        "chunk_id": INTEGER, "lang": LANG, "start": INTEGER, "end": INTEGER, "score": NUMBER,
        "snippet": STRING, "highlights": {"type": "array", "items": {"type": "array", "items": INTEGER}},
        "heading_path": HEADING_PATH,
    }),
    "SearchResult": _object({
        "doc_id": INTEGER, "chunk_id": INTEGER, "title": STRING, "source": STRING,
        "kind": {"enum": ["guidance", "note"]}, "lang": LANG, "score": NUMBER,
        "text": STRING, "start": INTEGER, "end": INTEGER, "doc_lang": LANG, "snippet": STRING,
        "highlights": {"type": "array", "items": {"type": "array", "items": INTEGER, "minItems": 2, "maxItems": 2},
                       "description": "[start, end) spans of snippet to mark"},
        "heading_path": HEADING_PATH,
        "more_passages": INTEGER, "passages": {"type": "array", "items": _ref("Passage")},
        "explain": _object({"dense_rank": {"type": ["integer", "null"]},
                            "keyword_rank": {"type": ["integer", "null"]},
                            "keyword_share": NUMBER}),
    }),
    "SearchResponse": _object({
        "results": {"type": "array", "items": _ref("SearchResult")},
        "query": _object({"text": STRING, "lang": LANG, "terms": {"type": "array", "items": STRING},
                          "mode": {"enum": ["hybrid", "dense", "keyword"]}, "filters": {"type": "object"}}),
        "has_more": {"type": "boolean"},
        "facets": {"type": "object", "additionalProperties": {"type": "object",
                                                              "additionalProperties": INTEGER}},
    }, ["results", "query", "has_more"]),
    "Citation": _object({"doc_id": INTEGER, "chunk_id": INTEGER, "title": STRING, "source": STRING,
                         "start": INTEGER, "end": INTEGER, "text": STRING, "lang": LANG,
                         "heading_path": HEADING_PATH}),
    "AskResponse": _object({
        "answer": {"type": ["string", "null"], "description": "sentences quoted from the first citation, or null"},
        "lang": {"type": ["string", "null"], "description": "the language the answer is written in"},
        "confidence": NUMBER, "question_lang": LANG,
        "citations": {"type": "array", "items": _ref("Citation"),
                      "description": "the answer's source first (its exact offsets), then the passages consulted"},
        "in_question_language": {"oneOf": [_ref("Citation"), {"type": "null"}],
                                 "description": "when the answer is in another language: the best passage in the asker's"},
        "evidence": {"type": "object", "additionalProperties": NUMBER,
                     "description": "what the confidence was computed from: keyword coverage of the answer and of "
                                    "its passage, the passage's cosine with the question, its lead over the next"},
    }),
    "DocumentSummary": _object({
        "id": INTEGER, "title": STRING, "source": STRING, "kind": {"enum": ["guidance", "note"]},
        "lang": LANG, "languages": {"type": "array", "items": STRING},
        "tags": {"type": "array", "items": STRING}, "updated_at": NULLABLE_STRING,
    }),
    "DocumentList": _object({"documents": {"type": "array", "items": _ref("DocumentSummary")},
                             "total": INTEGER, "limit": INTEGER, "offset": INTEGER}),
    "Document": {"allOf": [_ref("DocumentSummary"), _object({
        "text": STRING, "visibility": STRING, "is_mixed": {"type": "boolean"},
        "owner": {"type": "string", "description": "the user name of who uploaded it; empty when the operator ingested it"},
        "note": {"type": ["object", "null"]},
        "headings": {"type": "array", "items": _object({"start": INTEGER, "end": INTEGER, "level": INTEGER}),
                     "description": "[start, end) of each heading in text, and its level (1 outermost)"},
        "passages": {"type": "array", "items": _object({"chunk_id": INTEGER, "start": INTEGER, "end": INTEGER,
                                                         "lang": LANG})},
        "related": {"type": "array", "items": {"allOf": [_ref("DocumentSummary"), _object(
            {"score": NUMBER, "passage_lang": LANG})]}},
    })]},
    "UploadResults": _object({"results": {"type": "array", "items": _object({
        "name": STRING, "status": {"enum": ["added", "updated", "skipped", "failed"]},
        "doc_ids": {"type": "array", "items": INTEGER}, "error": NULLABLE_STRING,
    })}}),
    "Deleted": _object({"deleted": {"type": "array", "items": STRING}}),
    "TopicList": _object({"topics": {"type": "array", "items": _object({
        "tag": STRING, "documents": INTEGER,
        "languages": {"type": "object", "additionalProperties": INTEGER,
                      "description": "guidance documents per main language"}})}}),
    "TopicDocuments": _object({"tag": STRING, "documents": {
        "type": "object", "additionalProperties": {"type": "array", "items": _ref("DocumentSummary")},
        "description": "the topic's guidance by main language"}}),
    "DocumentTopics": _object({"doc_id": INTEGER, "topics": {"type": "array", "items": STRING}}),
    "Health": _object({"status": STRING}),
    "AuditLog": _object({"entries": {"type": "array", "items": _object({
        "id": INTEGER, "at": STRING, "actor": STRING, "action": STRING, "target": STRING,
        "details": {"type": "object"}})}, "total": INTEGER, "limit": INTEGER, "offset": INTEGER}),
    "Ready": _object({"status": STRING, "documents": INTEGER, "chunks": INTEGER, "vectors": INTEGER,
                      "keyword_chunks": INTEGER}),
}


def _query(name: str, description: str, schema: dict | None = None, required: bool = False) -> dict:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema or STRING}


SEARCH_PARAMETERS = [
    _query("q", "what to look for, in any language", required=True),
    _query("k", "results per page (1-100, default 10)", INTEGER),
    _query("offset", "results to skip (paging)", INTEGER),
    _query("mode", "hybrid (default), dense or keyword", {"enum": ["hybrid", "dense", "keyword"]}),
    _query("lang", "only passages in this language", {"enum": ["th", "zh", "en"]}),
    _query("kind", "only guidance or only customer notes", {"enum": ["guidance", "note"]}),
    _query("tag", "only documents with this tag (repeatable: any of them)"),
    _query("product", "only notes about this product"),
    _query("status", "only notes with this status"),
    _query("channel", "only notes from this channel"),
    _query("from", "on or after this date (YYYY-MM-DD)", {"type": "string", "format": "date"}),
    _query("to", "on or before this date (YYYY-MM-DD)", {"type": "string", "format": "date"}),
    _query("facets", "1 to count the candidates per language, kind, product, status, channel and tag"),
]

DOC_ID = {"name": "doc_id", "in": "path", "required": True, "schema": INTEGER}


# -- collections (webapp/collections.py) ------------------------------------------------

COLLECTION_LANG = {"enum": ["th", "zh", "en", ""], "description": "the workshop's language; empty when not given"}
COLLECTION_SCHEMAS = {
    "ParallelPassage": _object({
        "doc_id": INTEGER, "chunk_id": INTEGER, "lang": LANG, "title": STRING, "source": STRING,
        "start": INTEGER, "end": INTEGER, "text": STRING,
        "score": {"type": "number", "description": "cosine of language-centered vectors"},
    }),
    "CollectionItem": _object({
        "id": INTEGER, "position": INTEGER,
        "doc_id": {"type": ["integer", "null"], "description": "null once the document was deleted"},
        "chunk_id": {"type": ["integer", "null"]}, "start": INTEGER, "end": INTEGER, "lang": LANG,
        "text": {"type": "string", "description": "copied from the document when the item was added"},
        "title": STRING, "source": STRING, "annotation": STRING, "created_at": NULLABLE_STRING,
        "parallel": {"type": "array", "items": _ref("ParallelPassage"),
                     "description": "with ?parallel=1: the same passage in each other language, where found"},
    }, ["id", "position", "doc_id", "chunk_id", "start", "end", "lang", "text", "title", "source", "annotation",
        "created_at"]),
    "CollectionSummary": _object({
        "id": INTEGER, "name": STRING, "description": STRING, "lang": COLLECTION_LANG, "owner": STRING,
        "shared": {"type": "boolean"}, "share_token": NULLABLE_STRING,
        "share_url": {"type": ["string", "null"], "description": "the read-only page for anyone with the link"},
        "item_count": INTEGER, "created_at": NULLABLE_STRING, "updated_at": NULLABLE_STRING,
    }),
    "Collection": {"allOf": [_ref("CollectionSummary"), _object({
        "items": {"type": "array", "items": _ref("CollectionItem"), "description": "in their order"}})]},
    "CollectionList": _object({"collections": {"type": "array", "items": _ref("CollectionSummary")}}),
    "CollectionDeleted": _object({"deleted": INTEGER}),
}
SCHEMAS.update(COLLECTION_SCHEMAS)

_COLLECTION_ID = {"name": "collection_id", "in": "path", "required": True, "schema": INTEGER}
_ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": INTEGER}
_COLLECTION = _json(_ref("Collection"), "the collection with its items")


def _body(properties: dict, required: list[str]) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _object(properties, required)}}}


_COLLECTION_FIELDS = {"name": STRING, "description": STRING, "lang": COLLECTION_LANG}
_EXPORT_TYPES = {
    "text/markdown": "Markdown", "text/html": "a printable HTML page",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "a Word document",
}
COLLECTION_PATHS = {
    "/api/v1/collections": {
        "get": {"summary": "List collections, the most recently changed first",
                "responses": {"200": _json(_ref("CollectionList"), "every collection, without items")}},
        "post": {"summary": "Create a collection for a workshop", "requestBody": _body(_COLLECTION_FIELDS, ["name"]),
                 "responses": {"201": _COLLECTION, "400": ERROR}},
    },
    "/api/v1/collections/{collection_id}": {
        "get": {"summary": "One collection with its items",
                "parameters": [_COLLECTION_ID, _query("parallel", "1 to add each item's parallel passages",
                                                      {"enum": ["0", "1"]})],
                "responses": {"200": _COLLECTION, "400": ERROR, "404": ERROR}},
        "patch": {"summary": "Change a collection's name, description or language",
                  "parameters": [_COLLECTION_ID], "requestBody": _body(_COLLECTION_FIELDS, []),
                  "responses": {"200": _COLLECTION, "400": ERROR, "404": ERROR}},
        "delete": {"summary": "Delete a collection (its documents stay)", "parameters": [_COLLECTION_ID],
                   "responses": {"200": _json(_ref("CollectionDeleted"), "the id deleted"), "404": ERROR}},
    },
    "/api/v1/collections/{collection_id}/items": {"post": {
        "summary": "Add a passage: a chunk, exact offsets (an answer), or a short document whole",
        "description": "The text is copied from the document. A span already in the collection is not added "
                       "again: the answer is that item, with status 200.",
        "parameters": [_COLLECTION_ID],
        "requestBody": _body({"doc_id": INTEGER, "chunk_id": INTEGER, "start": INTEGER, "end": INTEGER,
                              "annotation": STRING}, ["doc_id"]),
        "responses": {"201": _json(_ref("CollectionItem"), "the new item"),
                      "200": _json(_ref("CollectionItem"), "the passage was already there: that item"),
                      "400": ERROR, "404": ERROR},
    }},
    "/api/v1/collections/{collection_id}/items/{item_id}": {
        "patch": {"summary": "Annotate an item", "parameters": [_COLLECTION_ID, _ITEM_ID],
                  "requestBody": _body({"annotation": STRING}, ["annotation"]),
                  "responses": {"200": _json(_ref("CollectionItem"), "the item"), "400": ERROR, "404": ERROR}},
        "delete": {"summary": "Remove an item", "parameters": [_COLLECTION_ID, _ITEM_ID],
                   "responses": {"200": _COLLECTION, "404": ERROR}},
    },
    "/api/v1/collections/{collection_id}/order": {"put": {
        "summary": "Put the items in a new order (every item id exactly once)", "parameters": [_COLLECTION_ID],
        "requestBody": _body({"items": {"type": "array", "items": INTEGER}}, ["items"]),
        "responses": {"200": _COLLECTION, "400": ERROR, "404": ERROR},
    }},
    "/api/v1/collections/{collection_id}/share": {
        "post": {"summary": "Turn the read-only share link on (share_url)", "parameters": [_COLLECTION_ID],
                 "responses": {"200": _COLLECTION, "404": ERROR}},
        "delete": {"summary": "Turn sharing off: the old link stops working", "parameters": [_COLLECTION_ID],
                   "responses": {"200": _COLLECTION, "404": ERROR}},
    },
    "/api/v1/collections/{collection_id}/export": {"get": {
        "summary": "The collection as a handout file (Content-Disposition names it after the collection)",
        "parameters": [_COLLECTION_ID, _query("format", "md, html or docx", {"enum": ["md", "html", "docx"]},
                                              required=True)],
        "responses": {"200": {"description": "the handout", "content": {
            media: {"schema": {"type": "string", "description": what}} for media, what in _EXPORT_TYPES.items()}},
            "400": ERROR, "404": ERROR},
    }},
}


# -- cases (webapp/cases.py) ------------------------------------------------------------

_CASE_DATE = {"type": ["string", "null"], "format": "date"}
CASE_SCHEMAS = {
    "CaseSummary": _object({
        "doc_id": INTEGER, "note_id": STRING, "title": STRING, "lang": LANG, "date": _CASE_DATE,
        "product": STRING, "channel": STRING, "status": STRING,
        "resolved": {"type": "boolean", "description": "its status says solved (resolved, closed...) and it has a "
                                                       "resolution"},
        "complaint": STRING, "resolution": STRING,
        "helped": {"type": "integer", "description": "how many agents said its resolution helped"},
    }),
    "Case": {"allOf": [_ref("CaseSummary"), _object({
        "customer": _object({"name": STRING, "email": STRING, "phone": STRING}),
        "tags": {"type": "array", "items": STRING}, "source": STRING,
    })]},
    "SimilarCase": {"allOf": [_ref("CaseSummary"), _object({
        "score": {"type": "number", "description": "the hybrid search score"},
        "relevance": {"type": "number", "description": "the score over the best result's (1 = the best match)"},
    })]},
    "CaseList": _object({"cases": {"type": "array", "items": _ref("CaseSummary")},
                         "total": INTEGER, "limit": INTEGER, "offset": INTEGER}),
    "SimilarCases": _object({
        "results": {"type": "array", "items": _ref("SimilarCase"),
                    "description": "the most similar first (resolved or open is not a sort key: filter with "
                                   "`state`); \"this helped\" lifts a case a little (log of its count, capped)"},
        "filters": {"type": "object"},
    }),
    "CaseHelped": _object({
        "doc_id": INTEGER, "helped": INTEGER,
        "counted": {"type": "boolean", "description": "this call added your mark (false: it was there already)"},
        "marked": {"type": "boolean", "description": "your mark is there now"},
    }),
    "ImportReport": _object({
        "name": STRING, "format": {"enum": ["csv", "jsonl", ""]},
        "rows": {"type": "integer", "description": "data rows (or lines) in the file"},
        "valid": {"type": "integer", "description": "rows that passed every check"},
        "problems": {"type": "array", "items": _object({
            "row": {"type": ["integer", "null"], "description": "row (CSV, the header is row 1) or line (JSONL); "
                                                                "null: the file or the mapping"},
            "field": NULLABLE_STRING, "column": NULLABLE_STRING, "message": STRING})},
        "imported": INTEGER, "added": INTEGER, "updated": INTEGER,
        "skipped": {"type": "integer", "description": "notes already there, unchanged"},
        "columns": {"type": "array", "items": STRING, "description": "the file's columns"},
        "mapping": {"type": "object", "additionalProperties": STRING,
                    "description": "our field -> the file's column, as used"},
    }),
}
SCHEMAS.update(CASE_SCHEMAS)

_CASE_FILTERS = {"product": NULLABLE_STRING, "channel": NULLABLE_STRING, "status": NULLABLE_STRING,
                 "state": {"enum": ["all", "resolved", "open", "", None],
                           "description": "resolved cases only, open (not resolved) ones only, or all (default)"},
                 "from": {"type": ["string", "null"], "format": "date"},
                 "to": {"type": ["string", "null"], "format": "date"}}
_HELPED = {"200": _json(_ref("CaseHelped"), "the case's count now"), "404": ERROR}
_IMPORT_REPORT = _ref("ImportReport")
CASE_PATHS = {
    "/api/v1/cases": {"get": {
        "summary": "Customer notes as cases, newest first",
        "parameters": [_query("product", "only this product"), _query("channel", "only this channel"),
                       _query("status", "only this status"),
                       _query("state", "resolved, open (not resolved) or all (default)",
                              {"enum": ["all", "resolved", "open"]}),
                       _query("from", "dated on or after (YYYY-MM-DD)", {"type": "string", "format": "date"}),
                       _query("to", "dated on or before (YYYY-MM-DD)", {"type": "string", "format": "date"}),
                       _query("limit", "1-200, default 20", INTEGER), _query("offset", "", INTEGER)],
        "responses": {"200": _json(_ref("CaseList"), "one page of cases"), "400": ERROR},
    }},
    "/api/v1/cases/{doc_id}": {"get": {
        "summary": "One case with its customer", "parameters": [DOC_ID],
        "responses": {"200": _json(_ref("Case"), "the case"), "404": ERROR},
    }},
    "/api/v1/cases/similar": {"post": {
        "summary": "Past cases most like a new complaint, in any language, the most similar first",
        "requestBody": {"required": True, "content": {"application/json": {"schema": _object(
            {"text": STRING, "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
             **_CASE_FILTERS}, ["text"])}}},
        "responses": {"200": _json(_ref("SimilarCases"), "the most similar cases"), "400": ERROR},
    }},
    "/api/v1/cases/{doc_id}/helped": {
        "post": {"summary": "Say the case's resolution helped (once per user)",
                 "parameters": [DOC_ID], "responses": _HELPED},
        "delete": {"summary": "Take back your \"this helped\"", "parameters": [DOC_ID], "responses": _HELPED},
    },
    "/api/v1/cases/import": {"post": {
        "summary": "Import notes from CSV or JSONL with your own column names: all of them, or none",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _object({
            "file": {"type": "string", "contentMediaType": "application/octet-stream"},
            "mapping": {"type": "string", "description": "JSON {our field: your column}; fields not named are "
                                                         "guessed from the column names, null unmaps one"},
            "dry_run": {"enum": ["0", "1"], "description": "1: check only, write nothing"},
        }, ["file"])}}},
        "responses": {
            "201": _json(_IMPORT_REPORT, "imported"),
            "200": _json(_IMPORT_REPORT, "checked (dry_run) or nothing changed (every note already there)"),
            "422": _json(_IMPORT_REPORT, "problems: nothing was written"),
            "400": ERROR, "413": ERROR,
        },
    }},
}

@lru_cache(maxsize=1)
def openapi_document() -> dict:
    return _with_security({
        "openapi": "3.1.0",
        "info": {"title": "CRM knowledge hub", "version": "1",
                 "description": "Search, ask and manage multilingual (Thai, Chinese, English) CRM knowledge."},
        "paths": {
            **COLLECTION_PATHS,
            **CASE_PATHS,
            "/api/v1/search": {"get": {
                "summary": "Hybrid search across languages", "parameters": SEARCH_PARAMETERS,
                "responses": {"200": _json(_ref("SearchResponse"), "results, best first"), "400": ERROR},
            }},
            "/api/v1/ask": {"post": {
                "summary": "Ask a question; the answer cites its passages",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _object(
                    {"question": STRING})}}},
                "responses": {"200": _json(_ref("AskResponse"), "the answer and its citations"), "400": ERROR},
            }},
            "/api/v1/documents": {
                "get": {
                    "summary": "List documents, most recently updated first",
                    "parameters": [_query("limit", "1-200, default 20", INTEGER), _query("offset", "", INTEGER),
                                   _query("kind", "guidance or note", {"enum": ["guidance", "note"]}),
                                   _query("lang", "main language", {"enum": ["th", "zh", "en"]})],
                    "responses": {"200": _json(_ref("DocumentList"), "one page of documents"), "400": ERROR},
                },
                "post": {
                    "summary": "Upload files (multipart field 'files') or add pasted text (JSON)",
                    "requestBody": {"required": True, "content": {
                        "multipart/form-data": {"schema": _object({"files": {
                            "type": "array", "items": {"type": "string", "contentMediaType": "application/octet-stream"}}})},
                        "application/json": {"schema": _object(
                            {"text": STRING, "title": STRING, "lang": {"enum": ["th", "zh", "en"]},
                             "tags": {"type": "array", "items": STRING}}, ["text"])},
                    }},
                    "responses": {
                        "201": _json(_ref("UploadResults"), "something was added or updated"),
                        "200": _json(_ref("UploadResults"), "nothing changed (every file already there)"),
                        "400": ERROR, "413": ERROR,
                        "403": _json(_ref("UploadResults"), "every file was refused: it would replace a document "
                                                            "you may not change, or asks for a visibility you "
                                                            "may not give; each result says which"),
                        "422": _json(_ref("UploadResults"), "nothing could be read; each result says why"),
                    },
                },
            },
            "/api/v1/documents/{doc_id}": {
                "get": {"summary": "One document whole, with its passages and related documents",
                        "parameters": [DOC_ID],
                        "responses": {"200": _json(_ref("Document"), "the document"), "404": ERROR}},
                "delete": {"summary": "Delete a document from the database and both indexes (its owner or an admin)",
                           "parameters": [DOC_ID],
                           "responses": {"200": _json(_ref("Deleted"), "the sources removed"), "403": ERROR,
                                         "404": ERROR}},
            },
            "/api/v1/topics": {"get": {
                "summary": "Topics of guidance, with their documents per language",
                "responses": {"200": _json(_ref("TopicList"), "every topic, most documents first")},
            }},
            "/api/v1/topics/{tag}": {"get": {
                "summary": "The guidance of one topic, by language",
                "parameters": [{"name": "tag", "in": "path", "required": True, "schema": STRING},
                               _query("lang", "only documents in this language", {"enum": ["th", "zh", "en"]})],
                "responses": {"200": _json(_ref("TopicDocuments"), "the topic's documents"),
                              "400": ERROR, "404": ERROR},
            }},
            "/api/v1/documents/{doc_id}/topics": {"put": {
                "summary": "Replace a document's topics (kept when its file is ingested again)",
                "parameters": [DOC_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _object(
                    {"topics": {"type": "array", "items": STRING}})}}},
                "responses": {"200": _json(_ref("DocumentTopics"), "the topics saved, normalized"),
                              "400": ERROR, "404": ERROR},
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This document",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "The process is alive",
                                 "responses": {"200": _json(_ref("Health"), "alive")}}},
            "/readyz": {"get": {"summary": "Database and indexes open and in step",
                                "responses": {"200": _json(_ref("Ready"), "ready"),
                                              "503": _json({"oneOf": [_ref("Ready"), _ref("Error")]},
                                                           "not ready")}}},
            "/api/v1/audit": {"get": {
                "summary": "The audit log, newest first (admins only; nobody can change it)",
                "parameters": [_query("limit", "1-1000, default 100", INTEGER), _query("offset", "", INTEGER),
                               _query("actor", "only this actor, e.g. user:somchai"),
                               _query("action", "only this action: search, view, export, similar, ask, login...")],
                "responses": {"200": _json(_ref("AuditLog"), "one page of entries"), "400": ERROR},
            }},
        },
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer",
                      "description": "a personal API token, made on the portal's account page"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session",
                        "description": "the portal's session; state-changing calls then need an X-CSRFToken header"},
        }},
    })


# Reached without signing in; everything else needs a token or a session.
PUBLIC_PATHS = {"/api/v1/openapi.json", "/healthz", "/readyz"}


def _with_security(document: dict) -> dict:
    """Every protected operation: its security, and the 401 and 403 answers it can give."""
    document["security"] = [{"token": []}, {"session": []}]
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            operation["responses"].setdefault("401", _json(_ref("Error"), "not signed in (no valid token or session)"))
            operation["responses"].setdefault("403", _json(_ref("Error"), "your role may not do this"))
    return document
