from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.audit_page import AuditPage
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    project: None | str | Unset = UNSET,
    user: None | str | Unset = UNSET,
    since: int | None | Unset = UNSET,
    after: int | None | Unset = UNSET,
    limit: int | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_project: None | str | Unset
    if isinstance(project, Unset):
        json_project = UNSET
    else:
        json_project = project
    params["project"] = json_project

    json_user: None | str | Unset
    if isinstance(user, Unset):
        json_user = UNSET
    else:
        json_user = user
    params["user"] = json_user

    json_since: int | None | Unset
    if isinstance(since, Unset):
        json_since = UNSET
    else:
        json_since = since
    params["since"] = json_since

    json_after: int | None | Unset
    if isinstance(after, Unset):
        json_after = UNSET
    else:
        json_after = after
    params["after"] = json_after

    json_limit: int | None | Unset
    if isinstance(limit, Unset):
        json_limit = UNSET
    else:
        json_limit = limit
    params["limit"] = json_limit


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/audit",
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | AuditPage | None:
    if response.status_code == 200:
        response_200 = AuditPage.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | AuditPage]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,
    user: None | str | Unset = UNSET,
    since: int | None | Unset = UNSET,
    after: int | None | Unset = UNSET,
    limit: int | None | Unset = UNSET,

) -> Response[ApiError | AuditPage]:
    """ Audit records, oldest first. A cluster role sees all of them; anyone else only those of
    the projects it is admin in (another project answers 404, like a missing one).

    Args:
        project (None | str | Unset):
        user (None | str | Unset):
        since (int | None | Unset):
        after (int | None | Unset):
        limit (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | AuditPage]
     """


    kwargs = _get_kwargs(
        project=project,
user=user,
since=since,
after=after,
limit=limit,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,
    user: None | str | Unset = UNSET,
    since: int | None | Unset = UNSET,
    after: int | None | Unset = UNSET,
    limit: int | None | Unset = UNSET,

) -> ApiError | AuditPage | None:
    """ Audit records, oldest first. A cluster role sees all of them; anyone else only those of
    the projects it is admin in (another project answers 404, like a missing one).

    Args:
        project (None | str | Unset):
        user (None | str | Unset):
        since (int | None | Unset):
        after (int | None | Unset):
        limit (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | AuditPage
     """


    return sync_detailed(
        client=client,
project=project,
user=user,
since=since,
after=after,
limit=limit,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,
    user: None | str | Unset = UNSET,
    since: int | None | Unset = UNSET,
    after: int | None | Unset = UNSET,
    limit: int | None | Unset = UNSET,

) -> Response[ApiError | AuditPage]:
    """ Audit records, oldest first. A cluster role sees all of them; anyone else only those of
    the projects it is admin in (another project answers 404, like a missing one).

    Args:
        project (None | str | Unset):
        user (None | str | Unset):
        since (int | None | Unset):
        after (int | None | Unset):
        limit (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | AuditPage]
     """


    kwargs = _get_kwargs(
        project=project,
user=user,
since=since,
after=after,
limit=limit,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,
    user: None | str | Unset = UNSET,
    since: int | None | Unset = UNSET,
    after: int | None | Unset = UNSET,
    limit: int | None | Unset = UNSET,

) -> ApiError | AuditPage | None:
    """ Audit records, oldest first. A cluster role sees all of them; anyone else only those of
    the projects it is admin in (another project answers 404, like a missing one).

    Args:
        project (None | str | Unset):
        user (None | str | Unset):
        since (int | None | Unset):
        after (int | None | Unset):
        limit (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | AuditPage
     """


    return (await asyncio_detailed(
        client=client,
project=project,
user=user,
since=since,
after=after,
limit=limit,

    )).parsed
