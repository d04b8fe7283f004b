"""The web app: Starlette routes over a Review, pages rendered by a sandboxed, autoescaping Jinja environment from
the templates shipped in sftdata/reviewing/pages, one script and one stylesheet from sftdata/reviewing/static.

Every request must carry the review's token as the first segment of its path (assets and saves too), or it is
refused (403); state changes are POSTs; pages are made in worker threads (reading rows, tokenizing), so a slow one
never holds up the others; every response forbids inline script and any other origin (CSP), sends no
referrer (the token stays in this browser) and is not cached. Rows are addressed by their number in the index:
no request names a file, except /source, which serves only a file of the chain.
"""
from __future__ import annotations

import hmac
import math
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import orjson
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import SandboxedEnvironment
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..curate.findings import CHECKS
from ..items import Locator
from .decisions import Action
from .index import FINDINGS, LANGUAGES, OUTCOMES, Format, Outcome, language_of
from .query import PAGE, Filter, jump
from .rows import preview
from .session import DecisionRefused, Review

HERE = Path(__file__).parent
STATIC = {"review.js": "text/javascript", "review.css": "text/css"}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
MAX_BODY = 4 << 20


class TokenGate:
    """Refuses any request whose path does not start with /TOKEN/; strips it for the routes; adds the headers."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.prefix = app, f"/{token}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        given = path[: len(self.prefix)]
        rest = path[len(self.prefix):]
        if not (hmac.compare_digest(given.encode(), self.prefix.encode()) and (rest == "" or rest.startswith("/"))):
            await _with_headers(PlainTextResponse("this review needs its token in the URL", 403))(scope, receive, send)
            return
        scope = {**scope, "path": rest or "/", "root_path": scope.get("root_path", "") + self.prefix}

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode().lower() not in {h.lower() for h in HEADERS}]
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _with_headers(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(loader=FileSystemLoader(HERE / "pages"), autoescape=select_autoescape(default=True),
                               trim_blocks=True, lstrip_blocks=True)
    env.filters["thousands"] = lambda n: f"{n:,}"
    return env


def build_app(review: Review, token: str) -> ASGIApp:
    env = environment()
    base = f"/{token}"

    def page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.update(base=base, review=review, outcomes=[o.value for o in OUTCOMES], findings=FINDINGS, checks=CHECKS,
                      languages=[*LANGUAGES[1:], "none"],
                      read_only=review.options.read_only, reviewer=review.reviewer)
        return HTMLResponse(env.get_template(name).render(**values), status)

    def rows(request: Request) -> Response:
        where = Filter.from_params(request.query_params)
        error = None
        if request.query_params.get("file") and request.query_params.get("line", "").strip():
            file, line = request.query_params["file"], request.query_params["line"].strip()
            row = jump(review.index, file, int(line)) if line.isdigit() else None
            if row is not None:
                return RedirectResponse(f"{base}/row/{row}", 303)
            error = f"{file} has no row at line {line}"
        return listing(where, request.query_params, error)

    def listing(where: Filter, params: Any, error: str | None = None, status_code: int = 200) -> Response:
        found, number, total, done = _page(review, where, params)
        listed = [_listed(review, int(r)) for r in found]
        pages = max(1, math.ceil(total / PAGE))
        ready = review.index.checked and review.timings.token_pass_done
        return page("list.html", status_code, error=error, ready=ready, where=where, listed=listed, number=number,
                    pages=pages, total=total, done=done, query=urlencode(where.params()),
                    reasons=review.index.reasons[1:], files=sorted({p.data.name for p in review.chain.parts}),
                    indexed=len(review.index), decided=len(review.file.state.latest))

    def rows_json(request: Request) -> Response:
        where = Filter.from_params(request.query_params)
        found, number, total, done = _page(review, where, request.query_params)
        return JSONResponse({"page": number, "total": total, "done": done,
                             "rows": [_listed(review, int(r)) for r in found]})

    async def status(request: Request) -> Response:
        return JSONResponse({"indexed": len(review.index), "done": review.index.done, "checked": review.index.checked,
                             "tokens_done": review.timings.token_pass_done, "tokenizer_s": review.timings.tokenizer_s,
                             "review": str(review.path), "decided": len(review.file.state.latest),
                             "error": review.index.error})

    def row(request: Request, error: str | None = None, status_code: int = 200) -> Response:
        number = int(request.path_params["number"])
        review.index.wait_for(number + 1)
        if not 0 <= number < len(review.index):
            return PlainTextResponse("no such row", 404)
        found = review.row(number)
        tokens = None
        if review.tokens is not None:
            if found.ids is not None and found.mask is not None:
                tokens = review.tokens.of_ids(found.ids, found.mask, _locator(found))
            elif found.record is not None and found.fmt is not Format.rendered:  # rendered text: shown as text
                tokens = review.tokens.of_record(found.record, _locator(found))
        back = request.query_params.get("back", "")
        listed = _neighbours(review, number, back)
        return page("row.html", status_code, row=found, tokens=tokens, error=error, back=back, prev=listed[0],
                    next=listed[1], page_of=listed[2], edit_text=request.state.edit_text if hasattr(request.state, "edit_text")
                    else found.record_json)

    async def decide(request: Request) -> Response:
        number = int(request.path_params["number"])
        form = await _form(request)
        if form is None:
            return PlainTextResponse("request too large", 413)
        action = form.get("action", "")
        if action not in {a.value for a in Action}:
            return PlainTextResponse("unknown action", 400)
        return await run_in_threadpool(decided, request, number, form)

    def decided(request: Request, number: int, form: dict[str, str]) -> Response:
        try:
            review.decide([number], Action(form["action"]), form.get("note", ""), form.get("record"))
        except DecisionRefused as refused:
            request.state.edit_text = form.get("record") or ""
            return row(request, str(refused), 422)
        back = form.get("back", "")
        return RedirectResponse(f"{base}/row/{number}" + (f"?{urlencode({'back': back})}" if back else ""), 303)

    async def bulk(request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return PlainTextResponse("request too large", 413)
        action = form.get("action", "")
        if action not in (Action.accept.value, Action.reject.value, Action.restore.value):
            return PlainTextResponse("unknown action", 400)
        return await run_in_threadpool(bulk_decided, form)

    def bulk_decided(form: dict[str, str]) -> Response:
        where, action = Filter.from_params(form), form["action"]
        if not (review.index.checked and review.timings.token_pass_done):  # a filter of the rows read so far is not all
            return listing(where, {}, f"still reading the rows ({len(review.index):,} so far): a decision on every row "
                           "of a filter waits until every row is read and counted", 409)
        chosen = [int(r) for r in review.select(where)]
        if action == Action.restore.value:
            outcome = review.index.columns().outcome
            chosen = [r for r in chosen if OUTCOMES[int(outcome[r])] is not Outcome.kept]
        try:
            review.decide(chosen, Action(action), form.get("note", ""))
        except DecisionRefused as refused:  # nothing saved: the list says why
            return listing(where, {}, f"nothing decided: {refused}", 422)
        return RedirectResponse(f"{base}/?{urlencode(where.params())}", 303)

    def source(request: Request) -> Response:
        part = review.chain.part_names.get(request.query_params.get("part", ""))  # a row of the chain itself
        path = part or review.chain.allowed(request.query_params.get("file", "") or "/")
        line = request.query_params.get("line", "")
        if path is None or not line.isdigit():
            return PlainTextResponse("not a file of this review", 403)
        with open(path, "rb") as f:
            for n, text in enumerate(f, 1):
                if n == int(line):
                    return PlainTextResponse(_shown_line(review, text))
        return PlainTextResponse("no such line", 404)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return PlainTextResponse("not found", 404)
        return FileResponse(HERE / "static" / name, media_type=STATIC[name])

    routes = [Route("/", rows), Route("/api/rows", rows_json), Route("/api/status", status),
              Route("/row/{number:int}", row), Route("/row/{number:int}/decide", decide, methods=["POST"]),
              Route("/bulk", bulk, methods=["POST"]), Route("/source", source), Route("/static/{name}", static)]
    return TokenGate(Starlette(routes=routes), token)


def _page(review: Review, where: Filter, params: Any) -> tuple[list[int], int, int, bool]:
    """The rows of one page of the filter's result: (rows, page number, rows matched so far, whether all rows were
    indexed). Without a filter a page waits only for its own rows to be indexed."""
    number = max(0, int(params.get("page", "0")) if params.get("page", "0").isdigit() else 0)
    start = number * PAGE
    if where.empty:
        review.index.wait_for(start + PAGE)
        total = len(review.index)
        return list(range(start, min(start + PAGE, total))), number, total, review.index.done
    found = review.select(where)
    return [int(r) for r in found[start:start + PAGE]], number, len(found), review.index.done


def _listed(review: Review, row: int) -> dict[str, Any]:
    part, line, _, _ = review.index.locate(row)
    c = review.index.columns()
    key = review.key(row)
    decision = review.file.state.latest.get(key)
    inside = row < len(c)
    return {"row": row, "file": part.name, "line": line,
            "outcome": OUTCOMES[int(c.outcome[row])].value if inside else "kept",
            "reason": review.index.reasons[int(c.reason[row])] if inside else "",
            "trained": int(c.trained[row]) if inside else -1, "lang": language_of(int(c.flags[row])) if inside else "",
            "findings": [FINDINGS[i] for i in range(len(FINDINGS)) if inside and int(c.findings[row]) >> i & 1],
            "decision": decision.action.value if decision else "",
            "preview": preview(review.index, row, mask=review.mask if review.scrubber else None)}


def _neighbours(review: Review, row: int, back: str) -> tuple[int | None, int | None, int | None]:
    """The rows before and after this one in the list it was opened from, and the page of that list it is on."""
    where = Filter.from_params({k: v[0] for k, v in parse_qs(back).items()})
    if where.empty:
        return (row - 1 if row > 0 else None), (row + 1 if row + 1 < len(review.index) else None), row // PAGE
    found = review.select(where)
    at = int(np.searchsorted(found, row))
    prev = int(found[at - 1]) if at > 0 else None
    inside = at < len(found) and int(found[at]) == row
    after = at + 1 if inside else at
    return prev, int(found[after]) if after < len(found) else None, at // PAGE if inside else None


def _shown_line(review: Review, text: bytes) -> str:
    """A line of a file as /source shows it: personal information masked (a JSON row field by field) unless
    --show-pii."""
    if review.scrubber is None:
        return text.decode("utf-8", "replace")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return review.mask(text.decode("utf-8", "replace"))
    return orjson.dumps(review.mask(value)).decode() + "\n"


def _locator(found: Any) -> Locator:
    return Locator(found.key.file, found.key.line)


async def _form(request: Request) -> dict[str, str] | None:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
