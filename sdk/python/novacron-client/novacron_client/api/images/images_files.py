from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    role: str,
    *,
    project: None | str | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_project: None | str | Unset
    if isinstance(project, Unset):
        json_project = UNSET
    else:
        json_project = project
    params["project"] = json_project


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/images/{name}/files/{role}".format(name=quote(str(name), safe=""),role=quote(str(role), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | list[int] | None:
    if response.status_code == 200:
        response_200 = cast(list[int], response.content)

        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | list[int]]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    role: str,
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,

) -> Response[ApiError | list[int]]:
    """ Download one file of an image (agents cache images by checksum).

    Args:
        name (str):
        role (str):
        project (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | list[int]]
     """


    kwargs = _get_kwargs(
        name=name,
role=role,
project=project,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    role: str,
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,

) -> ApiError | list[int] | None:
    """ Download one file of an image (agents cache images by checksum).

    Args:
        name (str):
        role (str):
        project (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | list[int]
     """


    return sync_detailed(
        name=name,
role=role,
client=client,
project=project,

    ).parsed

async def asyncio_detailed(
    name: str,
    role: str,
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,

) -> Response[ApiError | list[int]]:
    """ Download one file of an image (agents cache images by checksum).

    Args:
        name (str):
        role (str):
        project (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | list[int]]
     """


    kwargs = _get_kwargs(
        name=name,
role=role,
project=project,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    role: str,
    *,
    client: AuthenticatedClient | Client,
    project: None | str | Unset = UNSET,

) -> ApiError | list[int] | None:
    """ Download one file of an image (agents cache images by checksum).

    Args:
        name (str):
        role (str):
        project (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | list[int]
     """


    return (await asyncio_detailed(
        name=name,
role=role,
client=client,
project=project,

    )).parsed
