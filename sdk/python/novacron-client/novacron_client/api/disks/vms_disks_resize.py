from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.disk_resize_request import DiskResizeRequest
from ...models.operation_ref import OperationRef
from typing import cast



def _get_kwargs(
    name: str,
    disk: str,
    *,
    body: DiskResizeRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/vms/{name}/disks/{disk}/resize".format(name=quote(str(name), safe=""),disk=quote(str(disk), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
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

    if response.status_code == 422:
        response_422 = ApiError.from_dict(response.json())



        return response_422

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
    disk: str,
    *,
    client: AuthenticatedClient | Client,
    body: DiskResizeRequest,

) -> Response[ApiError | OperationRef]:
    """ Grow a VM's disk (`disk0`; `disk` names it too). A running guest sees the new size at once.

    Args:
        name (str):
        disk (str):
        body (DiskResizeRequest): Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
     """


    kwargs = _get_kwargs(
        name=name,
disk=disk,
body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    disk: str,
    *,
    client: AuthenticatedClient | Client,
    body: DiskResizeRequest,

) -> ApiError | OperationRef | None:
    """ Grow a VM's disk (`disk0`; `disk` names it too). A running guest sees the new size at once.

    Args:
        name (str):
        disk (str):
        body (DiskResizeRequest): Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return sync_detailed(
        name=name,
disk=disk,
client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    name: str,
    disk: str,
    *,
    client: AuthenticatedClient | Client,
    body: DiskResizeRequest,

) -> Response[ApiError | OperationRef]:
    """ Grow a VM's disk (`disk0`; `disk` names it too). A running guest sees the new size at once.

    Args:
        name (str):
        disk (str):
        body (DiskResizeRequest): Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
     """


    kwargs = _get_kwargs(
        name=name,
disk=disk,
body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    disk: str,
    *,
    client: AuthenticatedClient | Client,
    body: DiskResizeRequest,

) -> ApiError | OperationRef | None:
    """ Grow a VM's disk (`disk0`; `disk` names it too). A running guest sees the new size at once.

    Args:
        name (str):
        disk (str):
        body (DiskResizeRequest): Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return (await asyncio_detailed(
        name=name,
disk=disk,
client=client,
body=body,

    )).parsed
