from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.backup import Backup
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    vm: None | str | Unset = UNSET,
    repo: None | str | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_vm: None | str | Unset
    if isinstance(vm, Unset):
        json_vm = UNSET
    else:
        json_vm = vm
    params["vm"] = json_vm

    json_repo: None | str | Unset
    if isinstance(repo, Unset):
        json_repo = UNSET
    else:
        json_repo = repo
    params["repo"] = json_repo


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/backups",
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> list[Backup] | None:
    if response.status_code == 200:
        response_200 = []
        _response_200 = response.json()
        for response_200_item_data in (_response_200):
            response_200_item = Backup.from_dict(response_200_item_data)



            response_200.append(response_200_item)

        return response_200

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[list[Backup]]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    vm: None | str | Unset = UNSET,
    repo: None | str | Unset = UNSET,

) -> Response[list[Backup]]:
    """ The current project's backups in every repository (or one), oldest first.

    Args:
        vm (None | str | Unset):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[list[Backup]]
     """


    kwargs = _get_kwargs(
        vm=vm,
repo=repo,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    vm: None | str | Unset = UNSET,
    repo: None | str | Unset = UNSET,

) -> list[Backup] | None:
    """ The current project's backups in every repository (or one), oldest first.

    Args:
        vm (None | str | Unset):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        list[Backup]
     """


    return sync_detailed(
        client=client,
vm=vm,
repo=repo,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    vm: None | str | Unset = UNSET,
    repo: None | str | Unset = UNSET,

) -> Response[list[Backup]]:
    """ The current project's backups in every repository (or one), oldest first.

    Args:
        vm (None | str | Unset):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[list[Backup]]
     """


    kwargs = _get_kwargs(
        vm=vm,
repo=repo,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    vm: None | str | Unset = UNSET,
    repo: None | str | Unset = UNSET,

) -> list[Backup] | None:
    """ The current project's backups in every repository (or one), oldest first.

    Args:
        vm (None | str | Unset):
        repo (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        list[Backup]
     """


    return (await asyncio_detailed(
        client=client,
vm=vm,
repo=repo,

    )).parsed
