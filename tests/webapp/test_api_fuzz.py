"""Schemathesis against /api/v1/openapi.json: every operation, valid and invalid input, no 5xx, no off-schema reply.

It runs on a copy of the bundled corpus's knowledge base (uploads and
deletes change it), as an admin with an API token, so every operation is
reachable. `KB_FUZZ_EXAMPLES` sets the examples per operation (CI's budget);
the cases sent are counted and printed.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from tests.portal_client import token_for
from webapp import create_app

EXAMPLES = int(os.environ.get("KB_FUZZ_EXAMPLES", "20"))
STATEFUL_EXAMPLES = int(os.environ.get("KB_FUZZ_STATEFUL_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# In sequences, also: a request without (or with a wrong) token is refused, and what was deleted stays gone.
STATEFUL_CHECKS = [*CHECKS, ignored_auth, use_after_free, ensure_resource_availability]
SENT: list[str] = []


@pytest.fixture(scope="module")
def fuzzed_app(corpus_data_dir, models_dir, embedder, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    shutil.copytree(corpus_data_dir, data_dir)
    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    app = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False, "MAX_CONTENT_LENGTH": 2_000_000})
    app.config["FUZZ_TOKEN"] = token_for(kb.store, "fuzzer", "admin")
    yield app
    kb.close()


def test_no_operation_fails_or_answers_off_schema(fuzzed_app):
    """Valid and invalid requests for every operation; every failure of every operation is reported at once.

    (Each operation is driven by its own Hypothesis run rather than schemathesis' pytest plugin, which does not
    work with the pytest we pin.)
    """
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)
    headers = {"Authorization": f"Bearer {fuzzed_app.config['FUZZ_TOKEN']}"}
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def fuzz(case) -> None:
                SENT.append(f"{case.method} {case.path}")
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                fuzz()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation  # nothing to get wrong: no parameters, no body
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, so one run shows every operation's failure
                failures[f"{operation.method.upper()} {operation.path} ({mode})"] = str(exc)[:1500]
    assert len(operations) >= 30
    print(f"\nschemathesis: {len(SENT)} cases sent to {len(operations)} operations, {len(failures)} failing")
    assert not failures, "\n\n".join(f"{name}: {why}" for name, why in failures.items())


def test_call_sequences_keep_to_the_schema(fuzzed_app):
    """Stateful: sequences that follow the links schemathesis infers (a created collection is then read, ordered,
    shared, deleted; a listed case is marked helped...), with the token given the way the schema declares it,
    so that the same calls are also tried without it and with a wrong one."""
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzzed_app)
    token = fuzzed_app.config["FUZZ_TOKEN"]

    @schema.auth()
    class BearerToken:
        def get(self, case, context):
            return token

        def set(self, case, data, context):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    calls: Counter[str] = Counter()

    class Sequences(schema.as_state_machine()):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs)

        def after_call(self, response, case):
            calls[f"{case.method} {case.path} {response.status_code}"] += 1

    Sequences.run(settings=settings(max_examples=STATEFUL_EXAMPLES, stateful_step_count=6, deadline=None,
                                    derandomize=True, database=None, suppress_health_check=list(HealthCheck)))
    print(f"\nschemathesis stateful: {sum(calls.values())} calls")
    assert any(key.startswith("POST /api/v1/collections 201") for key in calls)  # sequences did create things
    assert any(key.endswith(" 200") and "{collection_id}" in key for key in calls)  # ...and then used them


def test_a_call_without_credentials_is_unauthorized_before_anything_else(fuzzed_app):
    """No token and no session: 401, also where a cookie-signed call would first fail its CSRF check."""
    client = fuzzed_app.test_client()
    for method, url in [("delete", "/api/v1/cases/1/helped"), ("post", "/api/v1/collections"),
                        ("put", "/api/v1/collections/1/order"), ("get", "/api/v1/documents")]:
        response = getattr(client, method)(url, json={})
        assert response.status_code == 401, (method, url, response.status_code)
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_ids_past_64_bits_are_not_found(fuzzed_app):
    """An id no database row can have is simply not found (it was an OverflowError, a 500)."""
    client = fuzzed_app.test_client()
    headers = {"Authorization": f"Bearer {fuzzed_app.config['FUZZ_TOKEN']}"}
    huge = 2**64
    for method, url in [("get", f"/api/v1/documents/{huge}"), ("delete", f"/api/v1/documents/{huge}"),
                        ("get", f"/api/v1/cases/{huge}"), ("post", f"/api/v1/cases/{huge}/helped"),
                        ("get", f"/api/v1/collections/{huge}"), ("get", f"/api/v1/collections/{huge}/export?format=md"),
                        ("post", f"/api/v1/collections/{huge}/share"), ("delete", f"/api/v1/collections/1/items/{huge}"),
                        ("put", f"/api/v1/documents/{huge}/topics"), ("get", f"/documents/{huge}")]:
        response = getattr(client, method)(url, headers=headers, json={"topics": []})
        assert response.status_code == 404, (method, url, response.status_code)
    big_body = client.post("/api/v1/collections/1/items", headers=headers, json={"doc_id": huge})
    assert big_body.status_code in (400, 404) and big_body.status_code != 500
