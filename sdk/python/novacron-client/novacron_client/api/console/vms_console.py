from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.console_log import ConsoleLog
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    *,
    tail_bytes: int | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_tail_bytes: int | None | Unset
    if isinstance(tail_bytes, Unset):
        json_tail_bytes = UNSET
    else:
        json_tail_bytes = tail_bytes
    params["tail_bytes"] = json_tail_bytes


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/vms/{name}/console".format(name=quote(str(name), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | ConsoleLog | None:
    if response.status_code == 200:
        response_200 = ConsoleLog.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if response.status_code == 503:
        response_503 = ApiError.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | ConsoleLog]:
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
    tail_bytes: int | None | Unset = UNSET,

) -> Response[ApiError | ConsoleLog]:
    """ What the guest wrote on its serial console.

    Args:
        name (str):
        tail_bytes (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ConsoleLog]
     """


    kwargs = _get_kwargs(
        name=name,
tail_bytes=tail_bytes,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    tail_bytes: int | None | Unset = UNSET,

) -> ApiError | ConsoleLog | None:
    """ What the guest wrote on its serial console.

    Args:
        name (str):
        tail_bytes (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ConsoleLog
     """


    return sync_detailed(
        name=name,
client=client,
tail_bytes=tail_bytes,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    tail_bytes: int | None | Unset = UNSET,

) -> Response[ApiError | ConsoleLog]:
    """ What the guest wrote on its serial console.

    Args:
        name (str):
        tail_bytes (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ConsoleLog]
     """


    kwargs = _get_kwargs(
        name=name,
tail_bytes=tail_bytes,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    tail_bytes: int | None | Unset = UNSET,

) -> ApiError | ConsoleLog | None:
    """ What the guest wrote on its serial console.

    Args:
        name (str):
        tail_bytes (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ConsoleLog
     """


    return (await asyncio_detailed(
        name=name,
client=client,
tail_bytes=tail_bytes,

    )).parsed
