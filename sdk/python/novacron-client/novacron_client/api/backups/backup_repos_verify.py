from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.backup_repos_verify_response_200 import BackupReposVerifyResponse200
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    *,
    all_: bool | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_all_: bool | None | Unset
    if isinstance(all_, Unset):
        json_all_ = UNSET
    else:
        json_all_ = all_
    params["all"] = json_all_


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/backup/repos/{name}/verify".format(name=quote(str(name), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> BackupReposVerifyResponse200 | None:
    if response.status_code == 200:
        response_200 = BackupReposVerifyResponse200.from_dict(response.json())



        return response_200

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[BackupReposVerifyResponse200]:
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
    all_: bool | None | Unset = UNSET,

) -> Response[BackupReposVerifyResponse200]:
    """ Re-hash every chunk and decode every index; names the backups a damaged chunk affects.

    Args:
        name (str):
        all_ (bool | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BackupReposVerifyResponse200]
     """


    kwargs = _get_kwargs(
        name=name,
all_=all_,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    all_: bool | None | Unset = UNSET,

) -> BackupReposVerifyResponse200 | None:
    """ Re-hash every chunk and decode every index; names the backups a damaged chunk affects.

    Args:
        name (str):
        all_ (bool | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BackupReposVerifyResponse200
     """


    return sync_detailed(
        name=name,
client=client,
all_=all_,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    all_: bool | None | Unset = UNSET,

) -> Response[BackupReposVerifyResponse200]:
    """ Re-hash every chunk and decode every index; names the backups a damaged chunk affects.

    Args:
        name (str):
        all_ (bool | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[BackupReposVerifyResponse200]
     """


    kwargs = _get_kwargs(
        name=name,
all_=all_,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    all_: bool | None | Unset = UNSET,

) -> BackupReposVerifyResponse200 | None:
    """ Re-hash every chunk and decode every index; names the backups a damaged chunk affects.

    Args:
        name (str):
        all_ (bool | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        BackupReposVerifyResponse200
     """


    return (await asyncio_detailed(
        name=name,
client=client,
all_=all_,

    )).parsed
