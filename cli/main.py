"""The `kb` command line: a stable contract that people and other tools call.

    kb ingest PATH... [--json] [--queue]
    kb worker [--threads N]
    kb job ID [--wait] [--json]
    kb search QUERY [-k N] [--lang th|zh|en] [--kind guidance|note] [--mode hybrid|dense|keyword]
              [--tag T] [--product P] [--status S] [--channel C] [--from DATE] [--to DATE]
              [--source PATH] [--offset N] [--passages] [--json]
    kb search --queries FILE --json
    kb ask QUESTION [--json] | kb ask --queries FILE --json
    kb stats [--json]
    kb serve [--host H] [--port P] [--workers N]
    kb delete SOURCE... [--json]
    kb reindex [--reembed] [--json]
    kb prepare-answers [--json]
    kb user add NAME --role ROLE [--password-stdin] | set-role NAME ROLE | disable NAME | enable NAME | list
    kb token create USER [--name NAME] | list [USER] [--json] | revoke TOKEN_ID

Settings come from the environment (KB_DATA_DIR, KB_DATABASE_URL,
KB_EMBED_MODEL, ...); `--data-dir` overrides KB_DATA_DIR.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from kb.config import Settings
from kb.documents import KINDS
from kb.engine import ModelMismatchError
from kb.index.chunk_table import SearchFilters
from kb.knowledge_base import KnowledgeBase
from kb.search.types import MODES, EmptyQueryError, SearchResponse
from kb.services.accounts import ROLES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb", description="Multilingual CRM knowledge hub: ingest, search and manage knowledge."
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (default: $KB_DATA_DIR or ./data)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="add or update files and folders (recursive)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--queue", action="store_true",
                   help="hand the files to `kb worker` as a job (needs KB_QUEUE_URL) and print its id at once")

    p = sub.add_parser("worker", help="run ingest jobs from the queue named by KB_QUEUE_URL")
    p.add_argument("--threads", type=int, default=None,
                   help="jobs run at once (default 2: one job's text is prepared while another's passages "
                        "are embedded)")

    p = sub.add_parser("job", help="show an ingest job and each file's outcome")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--wait", action="store_true", help="wait until the job has finished")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("search", help="find passages in any language")
    p.add_argument("query", nargs="?", help="what to look for")
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    p.add_argument("--lang", choices=["th", "zh", "en"], help="only passages in this language")
    p.add_argument("--kind", choices=list(KINDS), help="only guidance or only customer notes")
    p.add_argument("--mode", choices=list(MODES), default="hybrid",
                   help="hybrid (default): words and meaning; dense: meaning only; keyword: words only")
    p.add_argument("--tag", action="append", default=[], help="only documents with this tag (repeatable: any of)")
    p.add_argument("--product", help="only customer notes about this product")
    p.add_argument("--status", help="only customer notes with this status")
    p.add_argument("--channel", help="only customer notes from this channel")
    p.add_argument("--from", dest="date_from", type=_date, metavar="YYYY-MM-DD", help="on or after this date")
    p.add_argument("--to", dest="date_to", type=_date, metavar="YYYY-MM-DD", help="on or before this date")
    p.add_argument("--source", help="only documents from this file or folder")
    p.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    p.add_argument("--passages", action="store_true",
                   help="one result per passage instead of one per document")
    p.add_argument("--queries", type=Path, metavar="FILE",
                   help="one query per line ('-' for stdin); prints one JSON object per line")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("ask", help="answer a question with sentences quoted from the knowledge base")
    p.add_argument("question", nargs="?")
    p.add_argument("--queries", type=Path, metavar="FILE",
                   help="one question per line ('-' for stdin); prints one JSON object per line")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="answer when the confidence reaches P (0 to 1; default: the fitted threshold)")

    p = sub.add_parser("stats", help="counts of documents, chunks and vectors")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("delete", help="remove documents by source file, folder or note source")
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="run the portal and JSON API under gunicorn")
    # Without --host or --port: the settings' (KB_HOST, KB_PORT).
    p.add_argument("--host", help="address to listen on")
    p.add_argument("--port", type=int, help="port (default 5000)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: 2 to 4 by CPU count)")

    p = sub.add_parser("reindex", help="rebuild the search indexes from the database")
    p.add_argument("--reembed", action="store_true",
                   help="embed every chunk again with the configured model (after changing KB_EMBED_MODEL)")
    p.add_argument("--reanalyze", action="store_true",
                   help="segment every chunk again (after adding words to the dictionary)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("prepare-answers",
                       help="embed every passage's sentences now (kept in the database), so no first answer waits")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("user", help="manage portal accounts (the first admin is made here)")
    users = p.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    u = users.add_parser("add", help="create a user and print their password once")
    u.add_argument("username")
    u.add_argument("--role", required=True, choices=list(ROLES))
    u.add_argument("--name", default="", help="the name shown in the portal")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of generating one")
    u = users.add_parser("set-role", help="change a user's role (signs them out everywhere)")
    u.add_argument("username")
    u.add_argument("role", choices=list(ROLES))
    for action, text in (("disable", "sign a user out everywhere and refuse their sign-ins and tokens"),
                         ("enable", "let a disabled user sign in again")):
        users.add_parser(action, help=text).add_argument("username")
    users.add_parser("list", help="every user with their role").add_argument("--json", action="store_true")
    users.add_parser("demo", help="create one demo user per role (those missing) and print their passwords once")

    p = sub.add_parser("token", help="API tokens (Authorization: Bearer ...) for scripts and other tools")
    tokens = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = tokens.add_parser("create", help="make a token for USER and print it, alone, once")
    t.add_argument("username", metavar="USER")
    t.add_argument("--name", default="command line", help="where it is used (shown in lists; default: command line)")
    t = tokens.add_parser("list", help="tokens (never the tokens themselves), of USER or of everyone")
    t.add_argument("username", nargs="?", metavar="USER")
    t.add_argument("--json", action="store_true")
    tokens.add_parser("revoke", help="stop a token working (its id, from `kb token list`)").add_argument(
        "token_id", type=int, metavar="TOKEN_ID")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    settings = Settings.from_env(**overrides)
    if args.command == "serve":
        from cli.serve import serve

        serve(settings, args.host, args.port, args.workers)
        return EXIT_OK
    if args.command == "user":
        return cmd_user(settings, args)
    if args.command == "token":
        return cmd_token(settings, args)
    if args.command in ("worker", "job") or (args.command == "ingest" and args.queue):
        return cmd_jobs(settings, args)
    worker = None
    if args.command == "ingest":
        from indexer.pipeline import IngestWorker, worth_a_worker

        # Started before anything else so its start-up overlaps the model's.
        worker = IngestWorker.start(settings) if worth_a_worker(args.paths) else None
    try:
        reembed = args.command == "reindex" and args.reembed
        kb = KnowledgeBase.open(settings, check_model=not reembed)
    except ModelMismatchError as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.worker = worker
    with kb:
        handler = {
            "ingest": cmd_ingest, "search": cmd_search, "ask": cmd_ask, "stats": cmd_stats,
            "delete": cmd_delete, "reindex": cmd_reindex, "prepare-answers": cmd_prepare_answers,
        }[args.command]
        return handler(kb, args)


def _print_json(obj: dict) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def cmd_ingest(kb: KnowledgeBase, args) -> int:
    from indexer.pipeline import ingest_paths

    try:
        report = ingest_paths(kb.engine, args.paths, progress=None if not args.json else False, worker=args.worker)
    finally:
        if args.worker is not None:
            args.worker.close()
    if args.json:
        _print_json(report.to_dict())
    else:
        print(
            f"{report.files} file(s): {report.added} added, {report.updated} updated, "
            f"{report.skipped} unchanged, {report.removed} removed, {len(report.failed)} failed"
        )
        for failure in report.failed:
            print(f"  failed: {failure['error']}", file=sys.stderr)
        if report.ignored:
            print(f"  ignored {len(report.ignored)} file(s) of unsupported types", file=sys.stderr)
    return EXIT_OK if report.documents_read else EXIT_FAILED


def cmd_jobs(settings: Settings, args) -> int:
    """`kb worker`, `kb job` and `kb ingest --queue`: the queue's side of ingest."""
    from indexer.queue import run_worker
    from kb.engine import Engine
    from kb.errors import InvalidInput, KBError

    try:
        if args.command == "worker":
            return run_worker(settings, threads=args.threads)
        if not settings.queue_url and args.command == "ingest":
            raise InvalidInput("kb ingest --queue needs a queue: set KB_QUEUE_URL (e.g. redis://127.0.0.1:6379/0)")
        engine = Engine.open(settings, check_model=False)
    except InvalidInput as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _jobs(engine, args)
    except KBError as exc:
        print(f"kb: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.store.dispose()


def _jobs(engine, args) -> int:
    from indexer.jobs import FILES, files_for_queue
    from indexer.queue import submit

    if args.command == "job":
        return _show_job(engine, args)
    files, report = files_for_queue(args.paths)
    job_id = submit(engine, FILES, files) if files else None
    if args.json:
        _print_json({"job_id": job_id, "files": len(files), "failed": report.failed, "ignored": report.ignored})
    else:
        if job_id:
            print(job_id)
        for failure in report.failed:
            print(f"  failed: {failure['error']}", file=sys.stderr)
    return EXIT_OK if job_id else EXIT_FAILED


def _show_job(engine, args) -> int:
    from indexer.jobs import FAILED, get_job

    view = get_job(engine, args.job_id)
    while args.wait and view is not None and not view.finished:
        time.sleep(0.5)
        view = get_job(engine, args.job_id)
    if view is None:
        print(f"kb: no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        _print_json(view.to_dict())
    else:
        print(f"job {view.id}: {view.state}, {view.files_done} of {len(view.files)} file(s) done"
              + (f" ({view.error})" if view.error else ""))
        for f in view.files:
            print(f"  {f.state:8} {f.name}" + (f": {f.error}" if f.error else ""))
    return EXIT_FAILED if view.state == FAILED else EXIT_OK


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _search(kb: KnowledgeBase, args, query: str) -> SearchResponse:
    filters = SearchFilters(
        lang=args.lang, kind=args.kind, tags=args.tag, product=args.product, status=args.status,
        channel=args.channel, date_from=args.date_from, date_to=args.date_to, source=args.source,
    )
    return kb.search(query, k=args.k, mode=args.mode, filters=filters, offset=args.offset,
                     group=not args.passages)


def cmd_search(kb: KnowledgeBase, args) -> int:
    if args.queries:
        if args.query:
            print("kb search: give either QUERY or --queries FILE, not both", file=sys.stderr)
            return EXIT_USAGE
        return _search_many(kb, args)
    if args.query is None:
        print("kb search: a QUERY is required (or --queries FILE)", file=sys.stderr)
        return EXIT_USAGE
    try:
        response = _search(kb, args, args.query)
    except EmptyQueryError as exc:
        if args.json:
            _print_json({"results": [], "error": {"code": "empty_query", "message": str(exc)}})
        else:
            print(f"kb search: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json(response.to_dict())
        return EXIT_OK
    print(f"query [{response.query_lang}]: {' | '.join(response.query_terms) or '(no keywords)'}")
    if not response.results:
        print("no results")
    bold = sys.stdout.isatty()
    for rank, hit in enumerate(response.results, args.offset + 1):
        share = f"{round(100 * hit.keyword_share)}% words" if args.mode == "hybrid" else args.mode
        more = f", {hit.more_count} more passage(s)" if hit.more_count else ""
        print(f"{rank:>2}. [{hit.lang}] {hit.title}  ({hit.kind}, {share}{more})")
        print(f"    {_marked(hit.best.snippet, bold)}")
        print(f"    {hit.source}")
    if response.has_more:
        print(f"more: --offset {args.offset + args.k}")
    return EXIT_OK


def _marked(snippet, bold: bool) -> str:
    """The snippet with matched words in bold (a terminal) or between [ and ]."""
    opening, closing = ("\033[1m", "\033[0m") if bold else ("[", "]")
    text, out, last = snippet.text, [], 0
    for start, end in snippet.highlights:
        out += [text[last:start], opening, text[start:end], closing]
        last = end
    return "".join(out) + text[last:]


def _search_many(kb: KnowledgeBase, args) -> int:
    """One JSON object per input line, in order; the model is loaded once for all of them."""
    stream = sys.stdin if str(args.queries) == "-" else args.queries.open(encoding="utf-8")
    with stream:
        for line in stream:
            try:
                _print_json(_search(kb, args, line.rstrip("\n")).to_dict())
            except EmptyQueryError as exc:
                _print_json({"results": [], "error": {"code": "empty_query", "message": str(exc)}})
    return EXIT_OK


def cmd_ask(kb: KnowledgeBase, args) -> int:
    from kb.search.answer import answer_question

    if args.queries:
        if args.question:
            print("kb ask: give either QUESTION or --queries FILE, not both", file=sys.stderr)
            return EXIT_USAGE
        stream = sys.stdin if str(args.queries) == "-" else args.queries.open(encoding="utf-8")
        with stream:
            for line in stream:
                try:
                    _print_json(answer_question(kb.engine, line.rstrip("\n"), args.min_confidence).to_dict())
                except EmptyQueryError as exc:
                    _print_json({"answer": None, "citations": [], "error": {"code": "empty_query", "message": str(exc)}})
        return EXIT_OK
    if args.question is None:
        print("kb ask: a QUESTION is required (or --queries FILE)", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = answer_question(kb.engine, args.question, args.min_confidence)
    except EmptyQueryError as exc:
        print(f"kb ask: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json(result.to_dict())
        return EXIT_OK
    if result.answer is None:
        print("no answer found in the knowledge base; the closest passages:")
        for c in result.citations[:3]:
            print(f"  [{c.lang}] {c.title}: {' '.join(c.text.split())[:200]}")
        return EXIT_OK
    label = f" [{result.lang}]" if result.lang != result.question_lang else ""
    print(f"{' '.join(result.answer.split())}{label}")
    source = result.citations[0]
    print(f"  source: {source.title} ({source.source}, characters {source.start}-{source.end}); "
          f"confidence {result.confidence:.2f}")
    if result.in_question_language:
        own = result.in_question_language
        print(f"  in your language [{own.lang}]: {own.title}: {' '.join(own.text.split())[:200]}")
    return EXIT_OK


def cmd_stats(kb: KnowledgeBase, args) -> int:
    stats = kb.stats()
    if args.json:
        _print_json(stats.to_dict())
        return EXIT_OK
    print(f"documents: {stats.documents}")
    print(f"chunks:    {stats.chunks}")
    print(f"vectors:   {stats.vectors}")
    print("languages: " + (", ".join(f"{k} {v}" for k, v in sorted(stats.languages.items())) or "-"))
    print("kinds:     " + (", ".join(f"{k} {v}" for k, v in sorted(stats.kinds.items())) or "-"))
    print(f"model:     {stats.model or '-'}")
    return EXIT_OK


def cmd_delete(kb: KnowledgeBase, args) -> int:
    removed = kb.delete(args.sources)
    if args.json:
        _print_json({"deleted": len(removed), "sources": removed})
    else:
        print(f"deleted {len(removed)} document(s)")
    return EXIT_OK if removed else EXIT_FAILED


def cmd_reindex(kb: KnowledgeBase, args) -> int:
    count = kb.reindex(reembed=args.reembed, reanalyze=args.reanalyze)
    if args.json:
        _print_json({"vectors": count})
    else:
        print(f"vector index rebuilt: {count} vectors")
    return EXIT_OK


def cmd_prepare_answers(kb: KnowledgeBase, args) -> int:
    from kb.search.answer import prepare_sentences

    started = time.perf_counter()
    count = prepare_sentences(kb.engine)
    seconds = time.perf_counter() - started
    if args.json:
        _print_json({"sentences": count, "seconds": round(seconds, 1)})
    else:
        print(f"answer sentences ready: {count} in {seconds:.0f} s")
    return EXIT_OK


def cmd_user(settings: Settings, args) -> int:
    """Accounts only need the database: no model, no indexes."""
    from kb.services import accounts
    from kb.storage.store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    try:
        if args.user_command == "add":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
            account, password = accounts.add_user(store, args.username, args.role, password, args.name)
            print(f"user {account.username} ({account.role}) created")
            if not args.password_stdin:
                print(f"password: {password}")
                print("(shown only now: give it to the user, who should change it)")
        elif args.user_command == "set-role":
            account = accounts.set_role(store, args.username, args.role)
            print(f"user {account.username} is now {account.role}")
        elif args.user_command == "demo":
            existing = {a.username for a in accounts.list_users(store)}
            made = [accounts.add_user(store, f"demo-{role}", role, display_name=f"Demo {role}")
                    for role in accounts.ROLES if f"demo-{role}" not in existing]
            for account, password in made:
                print(f"  {account.username:<16} {account.role:<9} password: {password}")
            if made:
                print("(demo passwords are shown only now)")
            else:
                print("demo users already exist; `kb user add` makes more")
        elif args.user_command in ("disable", "enable"):
            account = accounts.set_disabled(store, args.username, args.user_command == "disable")
            print(f"user {account.username} {'disabled' if account.disabled else 'enabled'}")
        else:
            listed = accounts.list_users(store)
            if args.json:
                _print_json({"users": [{"username": a.username, "name": a.display_name, "role": a.role,
                                        "disabled": a.disabled} for a in listed]})
            for a in [] if args.json else listed:
                print("\t".join([a.username, a.role] + (["disabled"] if a.disabled else [])))
    except accounts.AccountError as exc:
        print(f"kb user: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.dispose()
    return EXIT_OK


def cmd_token(settings: Settings, args) -> int:
    """API tokens from the command line: `create` prints the token alone, so `TOKEN=$(kb token create x)` works."""
    from kb.services import accounts
    from kb.storage.store import Store

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_url)
    try:
        if args.token_command == "create":
            account = accounts.find_account(store, args.username)
            if account is None:
                raise accounts.AccountError(f"no user named {args.username!r} (kb user list shows them)")
            if account.disabled:
                raise accounts.AccountError(f"user {account.username!r} is disabled; enable them first")
            print(accounts.create_token(store, account.id, args.name)[1])
        elif args.token_command == "revoke":
            if not accounts.revoke_token(store, None, args.token_id):
                raise accounts.AccountError(f"no token with id {args.token_id} (kb token list shows them)")
            print(f"token {args.token_id} revoked")
        else:
            listed = accounts.tokens_by_user(store, args.username)
            if args.json:
                _print_json({"tokens": [{"user": user, **info.to_dict()} for user, info in listed]})
            for user, info in [] if args.json else listed:
                state = "revoked" if info.revoked else f"last used {info.last_used_at or 'never'}"
                print("\t".join([str(info.id), user, info.name, info.prefix + "...", state]))
    except accounts.AccountError as exc:
        print(f"kb token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.dispose()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
