"""`/problems/{type}`: every problem type's URI answers with what it means and what to do,
as a short HTML page for a person, or JSON for a client that asks for it (Accept)."""

from __future__ import annotations

import html
import json

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from memory_store.api.openapi import problem_types

router = APIRouter()

# What each refusal means, and what the caller can do about it. Written for people; a test
# checks that every problem type the service answers with has its entry.
EXPLANATIONS: dict[str, tuple[str, str]] = {
    "bad-request": ("The request could not be understood.", "Check the request against /docs."),
    "invalid-request": (
        "A parameter or a field of the body is missing, of the wrong type or out of range. "
        "`errors` lists where (`loc`) and what kind of error, never the value sent.",
        "Correct the fields `errors` names; /docs gives each one's rules.",
    ),
    "malformed-body": ("The body is not valid JSON.", "Send a JSON document."),
    "body-too-large": (
        "The body is larger than the service accepts (MEMORY_STORE_MAX_BODY_BYTES).",
        "Send less; a memory's content is at most 4096 characters.",
    ),
    "unknown-purpose": (
        "The purpose is not one of the catalogue's. `known` lists the ones there are.",
        "Declare one of `known`; the operator adds purposes in policies/catalogue.toml.",
    ),
    "unknown-category": (
        "The category is not one of the catalogue's. `known` lists the ones there are.",
        "Use one of `known`.",
    ),
    "invalid-cursor": (
        "The page cursor was not issued by this service, or not for this listing.",
        "Start again from the first page, without `cursor`.",
    ),
    "unauthenticated": (
        "No bearer token was sent, or it is unknown, revoked or expired.",
        "Send `Authorization: Bearer <token>`; an operator issues tokens with "
        "`memory-store tokens create`.",
    ),
    "forbidden": (
        "The policy does not let this token's role do this (a user token for another user, "
        "an assistant on a user's own routes, ...).",
        "Use a token of the role the operation is for (see its tag in /docs).",
    ),
    "consent-required": (
        "The user has not consented to this purpose for this category (sensitive categories "
        "need an explicit yes), or has withdrawn it.",
        "Do without; only the user can grant it, on their page or with "
        "PUT /v1/me/consents/{purpose}/{category}.",
    ),
    "memory-paused": (
        "The user has paused memory: nothing is read or written for them meanwhile.",
        "Do without; the user resumes memory on their page.",
    ),
    "version-mismatch": (
        "The memory changed since you read it: the If-Match version is not its current one.",
        "Read it again, then send your change with the new ETag.",
    ),
    "rate-limited": (
        "This token (or address) sent more requests than its rate allows.",
        "Wait the number of seconds in `Retry-After` (also `retry_after`), then retry.",
    ),
    "quota-exceeded": (
        "The user keeps as many memories as one user may (MEMORY_STORE_MAX_MEMORIES_PER_USER).",
        "The user can forget some; nothing was stored.",
    ),
    "secret-refused": (
        "The content looks like a secret (a password, a key, a card or account number), "
        "which memory-store never keeps. It was not stored, nor logged.",
        "Leave the secret out of what you remember.",
    ),
    "not-found": (
        "There is no such memory, user or record, or none this token may know of.",
        "Check the id; a forgotten memory is gone for good.",
    ),
    "memory-unreadable": (
        "A stored memory can no longer be decrypted: its key was destroyed (forgotten) or "
        "the stored bytes were altered.",
        "Nothing to retry; the operator can check `memory-store audit verify` and the logs.",
    ),
    "keys-unavailable": (
        "The service cannot reach its key-encryption keys (key file or HSM).",
        "Retry later; the operator sees why in `memory-store keys status` and the logs.",
    ),
    "storage-unavailable": (
        "The database could not store this (busy past its timeout, or unreachable). "
        "Nothing was stored.",
        "Retry after `Retry-After` seconds if given, or shortly.",
    ),
    "audit-unavailable": (
        "The audit trail could not record the request, so nothing was read or changed: "
        "no read happens without its record.",
        "Retry shortly.",
    ),
    "mcp-not-serving": (
        "The MCP endpoint is not running yet (the server is still starting).",
        "Retry in a moment.",
    ),
    "internal-error": (
        "The service failed: a bug. The request id finds it in the server's log.",
        "Report it with the `request_id`; retrying may not help.",
    ),
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - memory-store</title><link rel="icon" href="/favicon.ico">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
color:#1f2328}}code{{background:#f2f2f2;padding:0 .2em}}small{{color:#555}}</style></head>
<body><main><small>memory-store problem type <code>{uri}</code> &middot; HTTP {status}</small>
<h1>{title}</h1><p>{meaning}</p><h2>What to do</h2><p>{action}</p>
<p><a href="/problems/">Every problem type</a> &middot; <a href="/docs">API documentation</a></p>
</main></body></html>"""


def _statuses() -> dict[str, tuple[int, str]]:
    found = {cls.type_slug: (cls.status, cls.title) for cls in problem_types()}
    found["internal-error"] = (500, "Internal error")
    return found


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split(",")[0]


@router.get("/problems/", include_in_schema=False)
async def problem_index(request: Request) -> Response:
    known = _statuses()
    if not _wants_html(request):
        listing = [{"type": f"/problems/{slug}", "title": known[slug][1]} for slug in known]
        return Response(json.dumps(listing), media_type="application/json")
    items = "".join(
        f'<li><a href="/problems/{slug}">{html.escape(title)}</a> ({status})</li>'
        for slug, (status, title) in sorted(known.items())
    )
    return HTMLResponse(
        _PAGE.format(
            title="Problem types",
            uri="/problems/",
            status="4xx/5xx",
            meaning="Every refusal is RFC 9457 problem details whose <code>type</code> is one "
            "of these:",
            action=f"<ul>{items}</ul>",
        )
    )


@router.get("/problems/{slug}", include_in_schema=False)
async def problem_page(slug: str, request: Request) -> Response:
    known = _statuses()
    if slug not in known or slug not in EXPLANATIONS:
        return Response(
            json.dumps({"type": "about:blank", "title": "Not Found", "status": 404}),
            status_code=404,
            media_type="application/problem+json",
        )
    status, title = known[slug]
    meaning, action = EXPLANATIONS[slug]
    if not _wants_html(request):
        document = {
            "type": f"/problems/{slug}",
            "title": title,
            "status": status,
            "meaning": meaning,
            "what_to_do": action,
        }
        return Response(json.dumps(document), media_type="application/json")
    return HTMLResponse(
        _PAGE.format(
            title=html.escape(title),
            uri=f"/problems/{html.escape(slug)}",
            status=status,
            meaning=html.escape(meaning),
            action=html.escape(action),
        )
    )
