from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.operation import Operation
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    id: str,
    *,
    wait_seconds: int | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_wait_seconds: int | None | Unset
    if isinstance(wait_seconds, Unset):
        json_wait_seconds = UNSET
    else:
        json_wait_seconds = wait_seconds
    params["wait_seconds"] = json_wait_seconds


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/operations/{id}".format(id=quote(str(id), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | Operation | None:
    if response.status_code == 200:
        response_200 = Operation.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | Operation]:
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
    wait_seconds: int | None | Unset = UNSET,

) -> Response[ApiError | Operation]:
    """ One operation; with `wait_seconds`, answers when it finishes or the wait ends.

    Args:
        id (str):
        wait_seconds (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Operation]
     """


    kwargs = _get_kwargs(
        id=id,
wait_seconds=wait_seconds,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    wait_seconds: int | None | Unset = UNSET,

) -> ApiError | Operation | None:
    """ One operation; with `wait_seconds`, answers when it finishes or the wait ends.

    Args:
        id (str):
        wait_seconds (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Operation
     """


    return sync_detailed(
        id=id,
client=client,
wait_seconds=wait_seconds,

    ).parsed

async def asyncio_detailed(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    wait_seconds: int | None | Unset = UNSET,

) -> Response[ApiError | Operation]:
    """ One operation; with `wait_seconds`, answers when it finishes or the wait ends.

    Args:
        id (str):
        wait_seconds (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Operation]
     """


    kwargs = _get_kwargs(
        id=id,
wait_seconds=wait_seconds,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    id: str,
    *,
    client: AuthenticatedClient | Client,
    wait_seconds: int | None | Unset = UNSET,

) -> ApiError | Operation | None:
    """ One operation; with `wait_seconds`, answers when it finishes or the wait ends.

    Args:
        id (str):
        wait_seconds (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Operation
     """


    return (await asyncio_detailed(
        id=id,
client=client,
wait_seconds=wait_seconds,

    )).parsed
