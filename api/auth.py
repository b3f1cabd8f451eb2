"""Who may call what: a personal API key (`Authorization: Bearer`), its scopes and its projects."""

from aiohttp import web

from api.errors import ApiError, not_found
from api.state import KEY_CACHE, runtime
from batch_exports.store import api_keys


async def authorize(request: web.Request, scope: str) -> int:
    """The project the route names, once the caller's key may use `scope` on it.

    401 without a valid key; 404 for a project the key may not touch (its existence is not revealed);
    403 for a key that lacks the scope (`batch_export:write` includes `batch_export:read`).
    A key found valid on an existing project is kept (`api.key_cache`): its next request makes no statement.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "Authentication credentials were not provided: send 'Authorization: Bearer <personal API key>'.",
            type="authentication_error",
            code="not_authenticated",
        )
    try:
        project_id = int(request.match_info["project_id"])
    except ValueError:
        project_id = 0
    if not 0 < project_id < 2**63:  # beyond a bigint there is no project
        project_id = 0
    cache, token = request.app[KEY_CACHE], token.strip()
    hashed = api_keys.secure_value(token)
    key, project_exists = cache.get(hashed, project_id), True
    if key is None:  # not kept: looked up (and its use noted), then kept if valid on an existing project
        generation = cache.generation
        key, project_exists = await api_keys.find(runtime(request).pool, token, project_id)
        if key is not None and project_exists:
            cache.put(generation, hashed, project_id, key)
    if key is None:
        raise ApiError(
            401,
            "The personal API key is not valid or has been revoked.",
            type="authentication_error",
            code="authentication_failed",
        )
    if not project_id or not key.may_access(project_id) or not project_exists:
        raise not_found("Project not found.")
    if not key.may_use(scope):
        raise ApiError(
            403, f"This API key lacks the scope '{scope}'.", type="authentication_error", code="permission_denied"
        )
    return project_id
