from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.clone_request import CloneRequest
from ...models.operation_ref import OperationRef
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: CloneRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/vms/{name}/clone".format(name=quote(str(name), safe=""),),
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
    *,
    client: AuthenticatedClient | Client,
    body: CloneRequest,

) -> Response[ApiError | OperationRef]:
    """ Make a new VM from a stopped VM: the same CPUs, memory, image, disk size, labels,
    networks, added disks and added NICs, a new uuid, MACs and addresses, created stopped on the
    source's node, its disk a standalone
    copy of the source's, or (`linked`) a copy-on-write overlay over the source's disk frozen
    as a base that both then share. The clone's creation is the operation (`vm.clone`); if
    the disk cannot be made, the clone is rolled back like any failed create.

    Args:
        name (str):
        body (CloneRequest): Body of `POST /api/v1/vms/{name}/clone`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
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
    body: CloneRequest,

) -> ApiError | OperationRef | None:
    """ Make a new VM from a stopped VM: the same CPUs, memory, image, disk size, labels,
    networks, added disks and added NICs, a new uuid, MACs and addresses, created stopped on the
    source's node, its disk a standalone
    copy of the source's, or (`linked`) a copy-on-write overlay over the source's disk frozen
    as a base that both then share. The clone's creation is the operation (`vm.clone`); if
    the disk cannot be made, the clone is rolled back like any failed create.

    Args:
        name (str):
        body (CloneRequest): Body of `POST /api/v1/vms/{name}/clone`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
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
    body: CloneRequest,

) -> Response[ApiError | OperationRef]:
    """ Make a new VM from a stopped VM: the same CPUs, memory, image, disk size, labels,
    networks, added disks and added NICs, a new uuid, MACs and addresses, created stopped on the
    source's node, its disk a standalone
    copy of the source's, or (`linked`) a copy-on-write overlay over the source's disk frozen
    as a base that both then share. The clone's creation is the operation (`vm.clone`); if
    the disk cannot be made, the clone is rolled back like any failed create.

    Args:
        name (str):
        body (CloneRequest): Body of `POST /api/v1/vms/{name}/clone`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
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
    body: CloneRequest,

) -> ApiError | OperationRef | None:
    """ Make a new VM from a stopped VM: the same CPUs, memory, image, disk size, labels,
    networks, added disks and added NICs, a new uuid, MACs and addresses, created stopped on the
    source's node, its disk a standalone
    copy of the source's, or (`linked`) a copy-on-write overlay over the source's disk frozen
    as a base that both then share. The clone's creation is the operation (`vm.clone`); if
    the disk cannot be made, the clone is rolled back like any failed create.

    Args:
        name (str):
        body (CloneRequest): Body of `POST /api/v1/vms/{name}/clone`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
