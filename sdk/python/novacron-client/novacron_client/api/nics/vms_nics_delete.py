from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.operation_ref import OperationRef
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    nic: str,
    *,
    force: bool | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    params["force"] = force


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/api/v1/vms/{name}/nics/{nic}".format(name=quote(str(name), safe=""),nic=quote(str(nic), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | OperationRef | None:
    if response.status_code == 202:
        response_202 = OperationRef.from_dict(response.json())



        return response_202

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | OperationRef]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    name: str,
    nic: str,
    *,
    client: AuthenticatedClient | Client,
    force: bool | Unset = UNSET,

) -> Response[ApiError | OperationRef]:
    """ Remove a NIC `vm nic add` gave a VM (named `nic<N>` or by its MAC): unplugged from a
    running guest (only with `force=true`), its overlay address freed. The NICs a VM was
    created with stay.

    Args:
        name (str):
        nic (str):
        force (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
     """


    kwargs = _get_kwargs(
        name=name,
nic=nic,
force=force,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    nic: str,
    *,
    client: AuthenticatedClient | Client,
    force: bool | Unset = UNSET,

) -> ApiError | OperationRef | None:
    """ Remove a NIC `vm nic add` gave a VM (named `nic<N>` or by its MAC): unplugged from a
    running guest (only with `force=true`), its overlay address freed. The NICs a VM was
    created with stay.

    Args:
        name (str):
        nic (str):
        force (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return sync_detailed(
        name=name,
nic=nic,
client=client,
force=force,

    ).parsed

async def asyncio_detailed(
    name: str,
    nic: str,
    *,
    client: AuthenticatedClient | Client,
    force: bool | Unset = UNSET,

) -> Response[ApiError | OperationRef]:
    """ Remove a NIC `vm nic add` gave a VM (named `nic<N>` or by its MAC): unplugged from a
    running guest (only with `force=true`), its overlay address freed. The NICs a VM was
    created with stay.

    Args:
        name (str):
        nic (str):
        force (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
     """


    kwargs = _get_kwargs(
        name=name,
nic=nic,
force=force,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    nic: str,
    *,
    client: AuthenticatedClient | Client,
    force: bool | Unset = UNSET,

) -> ApiError | OperationRef | None:
    """ Remove a NIC `vm nic add` gave a VM (named `nic<N>` or by its MAC): unplugged from a
    running guest (only with `force=true`), its overlay address freed. The NICs a VM was
    created with stay.

    Args:
        name (str):
        nic (str):
        force (bool | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return (await asyncio_detailed(
        name=name,
nic=nic,
client=client,
force=force,

    )).parsed
