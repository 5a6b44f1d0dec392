from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.node import Node
from typing import cast



def _get_kwargs(
    name: str,
    action: str,

) -> dict[str, Any]:
    

    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/nodes/{name}/{action}".format(name=quote(str(name), safe=""),action=quote(str(action), safe=""),),
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | Node | None:
    if response.status_code == 200:
        response_200 = Node.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | Node]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    action: str,
    *,
    client: AuthenticatedClient | Client,

) -> Response[ApiError | Node]:
    """ `cordon` (no new VMs), `uncordon` (ready again) or `drain` (no new VMs; its VMs are to
    be moved away).

    Args:
        name (str):
        action (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Node]
     """


    kwargs = _get_kwargs(
        name=name,
action=action,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    action: str,
    *,
    client: AuthenticatedClient | Client,

) -> ApiError | Node | None:
    """ `cordon` (no new VMs), `uncordon` (ready again) or `drain` (no new VMs; its VMs are to
    be moved away).

    Args:
        name (str):
        action (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Node
     """


    return sync_detailed(
        name=name,
action=action,
client=client,

    ).parsed

async def asyncio_detailed(
    name: str,
    action: str,
    *,
    client: AuthenticatedClient | Client,

) -> Response[ApiError | Node]:
    """ `cordon` (no new VMs), `uncordon` (ready again) or `drain` (no new VMs; its VMs are to
    be moved away).

    Args:
        name (str):
        action (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Node]
     """


    kwargs = _get_kwargs(
        name=name,
action=action,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    action: str,
    *,
    client: AuthenticatedClient | Client,

) -> ApiError | Node | None:
    """ `cordon` (no new VMs), `uncordon` (ready again) or `drain` (no new VMs; its VMs are to
    be moved away).

    Args:
        name (str):
        action (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Node
     """


    return (await asyncio_detailed(
        name=name,
action=action,
client=client,

    )).parsed
