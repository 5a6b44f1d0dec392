from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.backup_repos_sync_response_200 import BackupReposSyncResponse200
from ...models.repo_sync_request import RepoSyncRequest
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: RepoSyncRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/backup/repos/{name}/sync".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | BackupReposSyncResponse200 | None:
    if response.status_code == 200:
        response_200 = BackupReposSyncResponse200.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | BackupReposSyncResponse200]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: RepoSyncRequest,

) -> Response[ApiError | BackupReposSyncResponse200]:
    """ Replicate a repository to another location (another site): chunks before the indexes that
    name them, so the copy is a valid repository at every moment and an interrupted sync
    resumes. With `as`, the copy is registered as a repository (same key file).

    Args:
        name (str):
        body (RepoSyncRequest): Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to
            another location (another
            site), blob for blob; the copy opens with the same key file.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupReposSyncResponse200]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: RepoSyncRequest,

) -> ApiError | BackupReposSyncResponse200 | None:
    """ Replicate a repository to another location (another site): chunks before the indexes that
    name them, so the copy is a valid repository at every moment and an interrupted sync
    resumes. With `as`, the copy is registered as a repository (same key file).

    Args:
        name (str):
        body (RepoSyncRequest): Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to
            another location (another
            site), blob for blob; the copy opens with the same key file.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupReposSyncResponse200
     """


    return sync_detailed(
        name=name,
client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: RepoSyncRequest,

) -> Response[ApiError | BackupReposSyncResponse200]:
    """ Replicate a repository to another location (another site): chunks before the indexes that
    name them, so the copy is a valid repository at every moment and an interrupted sync
    resumes. With `as`, the copy is registered as a repository (same key file).

    Args:
        name (str):
        body (RepoSyncRequest): Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to
            another location (another
            site), blob for blob; the copy opens with the same key file.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupReposSyncResponse200]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: RepoSyncRequest,

) -> ApiError | BackupReposSyncResponse200 | None:
    """ Replicate a repository to another location (another site): chunks before the indexes that
    name them, so the copy is a valid repository at every moment and an interrupted sync
    resumes. With `as`, the copy is registered as a repository (same key file).

    Args:
        name (str):
        body (RepoSyncRequest): Body of `POST /api/v1/backup/repos/{name}/sync`: replicate to
            another location (another
            site), blob for blob; the copy opens with the same key file.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupReposSyncResponse200
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
