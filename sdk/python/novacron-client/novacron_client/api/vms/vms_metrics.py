from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.vm_metrics import VmMetrics
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    *,
    since: int | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_since: int | None | Unset
    if isinstance(since, Unset):
        json_since = UNSET
    else:
        json_since = since
    params["since"] = json_since


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/vms/{name}/metrics".format(name=quote(str(name), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | VmMetrics | None:
    if response.status_code == 200:
        response_200 = VmMetrics.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | VmMetrics]:
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
    since: int | None | Unset = UNSET,

) -> Response[ApiError | VmMetrics]:
    """ A VM's recent usage: every sample kept since `since`, the newest one, and the rates
    between the two newest. Empty until the VM's agent sent a sample (the VM runs).

    Args:
        name (str):
        since (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | VmMetrics]
     """


    kwargs = _get_kwargs(
        name=name,
since=since,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    since: int | None | Unset = UNSET,

) -> ApiError | VmMetrics | None:
    """ A VM's recent usage: every sample kept since `since`, the newest one, and the rates
    between the two newest. Empty until the VM's agent sent a sample (the VM runs).

    Args:
        name (str):
        since (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | VmMetrics
     """


    return sync_detailed(
        name=name,
client=client,
since=since,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    since: int | None | Unset = UNSET,

) -> Response[ApiError | VmMetrics]:
    """ A VM's recent usage: every sample kept since `since`, the newest one, and the rates
    between the two newest. Empty until the VM's agent sent a sample (the VM runs).

    Args:
        name (str):
        since (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | VmMetrics]
     """


    kwargs = _get_kwargs(
        name=name,
since=since,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    since: int | None | Unset = UNSET,

) -> ApiError | VmMetrics | None:
    """ A VM's recent usage: every sample kept since `since`, the newest one, and the rates
    between the two newest. Empty until the VM's agent sent a sample (the VM runs).

    Args:
        name (str):
        since (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | VmMetrics
     """


    return (await asyncio_detailed(
        name=name,
client=client,
since=since,

    )).parsed
