"""The assistant's keyed items: memories it names by a namespace path and a key, holding a
JSON object. The name travels in the body, never in the URL (where proxies and access logs
keep it), so reads by name are POSTs."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from memory_store.api.deps import (
    PrincipalDep,
    PurposeQuery,
    ServicesDep,
    UserIdPath,
    problem_responses,
)
from memory_store.api.erasures import ERASURE_RESPONSES, PreferHeader, erasure_answer
from memory_store.api.responses import model_response
from memory_store.item_schemas import (
    ItemPage,
    ItemPublic,
    ItemPut,
    ItemRef,
    ItemSearch,
    NamespaceList,
    NamespaceQuery,
)

router = APIRouter(prefix="/v1/users/{user_id}/items", tags=["assistant"])


@router.put(
    "",
    response_model=ItemPublic,
    responses={
        201: {"model": ItemPublic, "description": "Created."},
        **problem_responses(400, 401, 403, 404, 409, 413, 422, 503),
    },
)
def put_item(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: ItemPut,
    principal: PrincipalDep,
    services: ServicesDep,
) -> Response:
    """Store `value` under (namespace, key) for `user_id`: 201 when new, 200 when it replaced
    the value (a new version; the old one is kept in the item's history). Idempotent: the
    same put again leaves one item with that value."""
    item, created = services.items.put(principal, user_id, purpose, body)
    return model_response(item, status_code=201 if created else 200)


@router.post(
    "/lookup",
    response_model=ItemPublic,
    responses=problem_responses(400, 401, 403, 404, 410, 422),
)
def get_item(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: ItemRef,
    principal: PrincipalDep,
    services: ServicesDep,
) -> ItemPublic:
    """The item of that name, if `purpose` may use its category. Audited like any read."""
    return services.items.get(principal, user_id, purpose, body)


@router.post(
    "/forget",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**ERASURE_RESPONSES, **problem_responses(400, 401, 403, 404, 422)},
    response_class=Response,
)
def forget_item(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: ItemRef,
    principal: PrincipalDep,
    services: ServicesDep,
    prefer: PreferHeader = None,
) -> Response:
    """Forget the item of that name as any memory is forgotten: its keys, it and its history
    go. The erasure's status is at `Location`."""
    erasure = services.items.forget(principal, user_id, purpose, body)
    return erasure_answer(erasure, prefer)


@router.post(
    "/search",
    response_model=ItemPage,
    responses=problem_responses(400, 401, 403, 404, 422),
)
def search_items(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: ItemSearch,
    principal: PrincipalDep,
    services: ServicesDep,
) -> ItemPage:
    """Items under `namespace_prefix` that `purpose` may use and that match `filter`, ranked
    by `query` when given (else last changed first), `offset` and `limit` paging them."""
    return services.items.search(principal, user_id, purpose, body)


@router.post(
    "/namespaces",
    response_model=NamespaceList,
    responses=problem_responses(400, 401, 403, 404, 422),
)
def list_namespaces(
    user_id: UserIdPath,
    purpose: PurposeQuery,
    body: NamespaceQuery,
    principal: PrincipalDep,
    services: ServicesDep,
) -> NamespaceList:
    """The namespace paths of the items `purpose` may use, sorted."""
    return services.items.namespaces(principal, user_id, purpose, body)
