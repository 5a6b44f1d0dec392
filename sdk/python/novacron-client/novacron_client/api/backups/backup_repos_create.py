from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.backup_repo import BackupRepo
from ...models.backup_repo_add_request import BackupRepoAddRequest
from typing import cast



def _get_kwargs(
    *,
    body: BackupRepoAddRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/backup/repos",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | BackupRepo | None:
    if response.status_code == 201:
        response_201 = BackupRepo.from_dict(response.json())



        return response_201

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | BackupRepo]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BackupRepoAddRequest,

) -> Response[ApiError | BackupRepo]:
    """ Add a repository: created where there is none, adopted where one exists (a repository
    describes itself, so a fresh install can restore from it).

    Args:
        body (BackupRepoAddRequest): Body of `POST /api/v1/backup/repos`. An existing repository
            at the location is adopted
            (disaster recovery: the repository describes itself).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupRepo]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    body: BackupRepoAddRequest,

) -> ApiError | BackupRepo | None:
    """ Add a repository: created where there is none, adopted where one exists (a repository
    describes itself, so a fresh install can restore from it).

    Args:
        body (BackupRepoAddRequest): Body of `POST /api/v1/backup/repos`. An existing repository
            at the location is adopted
            (disaster recovery: the repository describes itself).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupRepo
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BackupRepoAddRequest,

) -> Response[ApiError | BackupRepo]:
    """ Add a repository: created where there is none, adopted where one exists (a repository
    describes itself, so a fresh install can restore from it).

    Args:
        body (BackupRepoAddRequest): Body of `POST /api/v1/backup/repos`. An existing repository
            at the location is adopted
            (disaster recovery: the repository describes itself).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupRepo]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: BackupRepoAddRequest,

) -> ApiError | BackupRepo | None:
    """ Add a repository: created where there is none, adopted where one exists (a repository
    describes itself, so a fresh install can restore from it).

    Args:
        body (BackupRepoAddRequest): Body of `POST /api/v1/backup/repos`. An existing repository
            at the location is adopted
            (disaster recovery: the repository describes itself).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupRepo
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
