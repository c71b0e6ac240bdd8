"""`kb token`: API tokens made, listed and revoked from the command line, used against the real portal."""

from __future__ import annotations

import json

from kb.config import Settings
from kb.knowledge_base import KnowledgeBase
from tests.conftest import run_kb
from webapp import create_app


def test_a_token_made_on_the_command_line_opens_the_api_until_it_is_revoked(tmp_path, models_dir, embedder):
    data_dir = tmp_path / "data"
    run_kb("user", "add", "somchai", "--role", "agent", "--password-stdin", data_dir=data_dir, models_dir=models_dir,
           input="a-long-enough-password\n")
    made = run_kb("token", "create", "somchai", "--name", "CRM sync", data_dir=data_dir, models_dir=models_dir)
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("kbt_")  # alone on stdout: TOKEN=$(kb token create ...)

    listed = json.loads(run_kb("token", "list", "somchai", "--json", data_dir=data_dir, models_dir=models_dir).stdout)
    [info] = listed["tokens"]
    assert info["user"] == "somchai" and info["name"] == "CRM sync" and not info["revoked"]
    assert token not in json.dumps(listed) and token.startswith(info["prefix"])

    kb = KnowledgeBase.open(Settings(data_dir=data_dir, models_dir=models_dir), embedder=embedder)
    try:
        client = create_app({"KB_INSTANCE": kb, "TESTING": True, "KB_WARM_UP": False}).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/v1/documents", headers=headers).status_code == 200
        revoked = run_kb("token", "revoke", str(info["id"]), data_dir=data_dir, models_dir=models_dir)
        assert f"token {info['id']} revoked" in revoked.stdout
        assert client.get("/api/v1/documents", headers=headers).status_code == 401
    finally:
        kb.close()
    again = run_kb("token", "list", data_dir=data_dir, models_dir=models_dir).stdout
    assert "somchai" in again and "revoked" in again


def test_token_commands_name_what_is_missing(tmp_path, models_dir):
    data_dir = tmp_path / "data"
    nobody = run_kb("token", "create", "nobody", data_dir=data_dir, models_dir=models_dir, check=False)
    assert nobody.returncode == 2 and "no user named 'nobody'" in nobody.stderr and nobody.stdout == ""
    missing = run_kb("token", "revoke", "999", data_dir=data_dir, models_dir=models_dir, check=False)
    assert missing.returncode == 2 and "no token with id 999" in missing.stderr
