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

SCHEMAS = {
    "Error": _object({"error": _object({"code": STRING, "message": STRING})}),
    "Passage": _object({
        "chunk_id": INTEGER, "lang": LANG, "start": INTEGER, "end": INTEGER, "score": NUMBER,
        "snippet": STRING, "highlights": {"type": "array", "items": {"type": "array", "items": INTEGER}},
    }),
    "SearchResult": _object({
        "doc_id": INTEGER, "chunk_id": INTEGER, "title": STRING, "source": STRING,
        "kind": {"enum": ["guidance", "note"]}, "lang": LANG, "score": NUMBER,
        "text": STRING, "start": INTEGER, "end": INTEGER, "doc_lang": LANG, "snippet": STRING,
        "highlights": {"type": "array", "items": {"type": "array", "items": INTEGER, "minItems": 2, "maxItems": 2},
                       "description": "[start, end) spans of snippet to mark"},
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
                         "start": INTEGER, "end": INTEGER, "text": STRING, "lang": LANG}),
    "AskResponse": _object({
        "answer": {"type": ["string", "null"], "description": "sentences quoted from the first citation, or null"},
        "lang": {"type": ["string", "null"], "description": "the language the answer is written in"},
        "confidence": NUMBER, "question_lang": LANG,
        "citations": {"type": "array", "items": _ref("Citation"),
                      "description": "the answer's source first (its exact offsets), then the passages consulted"},
        "in_question_language": {"oneOf": [_ref("Citation"), {"type": "null"}],
                                 "description": "when the answer is in another language: the best passage in the asker's"},
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
        "note": {"type": ["object", "null"]},
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


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "CRM knowledge hub", "version": "1",
                 "description": "Search, ask and manage multilingual (Thai, Chinese, English) CRM knowledge."},
        "paths": {
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
                        "422": _json(_ref("UploadResults"), "nothing could be read; each result says why"),
                    },
                },
            },
            "/api/v1/documents/{doc_id}": {
                "get": {"summary": "One document whole, with its passages and related documents",
                        "parameters": [DOC_ID],
                        "responses": {"200": _json(_ref("Document"), "the document"), "404": ERROR}},
                "delete": {"summary": "Delete a document from the database and both indexes",
                           "parameters": [DOC_ID],
                           "responses": {"200": _json(_ref("Deleted"), "the sources removed"), "404": ERROR}},
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
        },
        "components": {"schemas": SCHEMAS},
    }
