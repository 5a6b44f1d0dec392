from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.backups_delete_response_200 import BackupsDeleteResponse200
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    id: str,
    *,
    repo: None | str | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_repo: None | str | Unset
    if isinstance(repo, Unset):
        json_repo = UNSET
    else:
        json_repo = repo
    params["repo"] = json_repo


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/api/v1/backups/{id}".format(id=quote(str(id), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | BackupsDeleteResponse200 | None:
    if response.status_code == 200:
        response_200 = BackupsDeleteResponse200.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | BackupsDeleteResponse200]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    repo: None | str | Unset = UNSET,

) -> Response[ApiError | BackupsDeleteResponse200]:
    """ Delete one of the project's backups: its index goes at once (the backup is no longer
    listed, restored or counted against `--max-backup-storage`); chunks no other backup uses
    go at the repository's next `gc`. Later backups of the VM stay whole (each lists all its
    chunks).

    Args:
        id (str):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupsDeleteResponse200]
     """


    kwargs = _get_kwargs(
        id=id,
repo=repo,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    repo: None | str | Unset = UNSET,

) -> ApiError | BackupsDeleteResponse200 | None:
    """ Delete one of the project's backups: its index goes at once (the backup is no longer
    listed, restored or counted against `--max-backup-storage`); chunks no other backup uses
    go at the repository's next `gc`. Later backups of the VM stay whole (each lists all its
    chunks).

    Args:
        id (str):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupsDeleteResponse200
     """


    return sync_detailed(
        id=id,
client=client,
repo=repo,

    ).parsed

async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    repo: None | str | Unset = UNSET,

) -> Response[ApiError | BackupsDeleteResponse200]:
    """ Delete one of the project's backups: its index goes at once (the backup is no longer
    listed, restored or counted against `--max-backup-storage`); chunks no other backup uses
    go at the repository's next `gc`. Later backups of the VM stay whole (each lists all its
    chunks).

    Args:
        id (str):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | BackupsDeleteResponse200]
     """


    kwargs = _get_kwargs(
        id=id,
repo=repo,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    repo: None | str | Unset = UNSET,

) -> ApiError | BackupsDeleteResponse200 | None:
    """ Delete one of the project's backups: its index goes at once (the backup is no longer
    listed, restored or counted against `--max-backup-storage`); chunks no other backup uses
    go at the repository's next `gc`. Later backups of the VM stay whole (each lists all its
    chunks).

    Args:
        id (str):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | BackupsDeleteResponse200
     """


    return (await asyncio_detailed(
        id=id,
client=client,
repo=repo,

    )).parsed
