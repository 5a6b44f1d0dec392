from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.vm import Vm
from ...models.vm_security_groups_request import VmSecurityGroupsRequest
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: VmSecurityGroupsRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/vms/{name}/security-groups".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | Vm | None:
    if response.status_code == 200:
        response_200 = Vm.from_dict(response.json())



        return response_200

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | Vm]:
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
    body: VmSecurityGroupsRequest,

) -> Response[ApiError | Vm]:
    """ Set the security groups of a VM (the whole list; empty leaves its NICs unfiltered).
    Takes effect on a running VM.

    Args:
        name (str):
        body (VmSecurityGroupsRequest): Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's
            whole list (empty: none).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Vm]
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
    body: VmSecurityGroupsRequest,

) -> ApiError | Vm | None:
    """ Set the security groups of a VM (the whole list; empty leaves its NICs unfiltered).
    Takes effect on a running VM.

    Args:
        name (str):
        body (VmSecurityGroupsRequest): Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's
            whole list (empty: none).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Vm
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
    body: VmSecurityGroupsRequest,

) -> Response[ApiError | Vm]:
    """ Set the security groups of a VM (the whole list; empty leaves its NICs unfiltered).
    Takes effect on a running VM.

    Args:
        name (str):
        body (VmSecurityGroupsRequest): Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's
            whole list (empty: none).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Vm]
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
    body: VmSecurityGroupsRequest,

) -> ApiError | Vm | None:
    """ Set the security groups of a VM (the whole list; empty leaves its NICs unfiltered).
    Takes effect on a running VM.

    Args:
        name (str):
        body (VmSecurityGroupsRequest): Body of `PUT /api/v1/vms/{name}/security-groups`: the VM's
            whole list (empty: none).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Vm
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
