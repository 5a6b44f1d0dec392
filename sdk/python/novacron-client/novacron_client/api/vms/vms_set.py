from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.vm_set_request import VmSetRequest
from ...models.vm_set_response import VmSetResponse
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: VmSetRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/vms/{name}/set".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | VmSetResponse | None:
    if response.status_code == 200:
        response_200 = VmSetResponse.from_dict(response.json())



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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | VmSetResponse]:
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
    body: VmSetRequest,

) -> Response[ApiError | VmSetResponse]:
    """ Change a VM's labels and description (at once) and its CPUs and memory (when it next
    starts; at once when stopped). Refused, with nothing changed, while the VM migrates or
    is deleted, or when the node cannot give what is asked.

    Args:
        name (str):
        body (VmSetRequest): Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields
            stay as they are.
            Labels and description apply at once; CPUs and memory when the VM next starts (at once
            when it is stopped).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | VmSetResponse]
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
    body: VmSetRequest,

) -> ApiError | VmSetResponse | None:
    """ Change a VM's labels and description (at once) and its CPUs and memory (when it next
    starts; at once when stopped). Refused, with nothing changed, while the VM migrates or
    is deleted, or when the node cannot give what is asked.

    Args:
        name (str):
        body (VmSetRequest): Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields
            stay as they are.
            Labels and description apply at once; CPUs and memory when the VM next starts (at once
            when it is stopped).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | VmSetResponse
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
    body: VmSetRequest,

) -> Response[ApiError | VmSetResponse]:
    """ Change a VM's labels and description (at once) and its CPUs and memory (when it next
    starts; at once when stopped). Refused, with nothing changed, while the VM migrates or
    is deleted, or when the node cannot give what is asked.

    Args:
        name (str):
        body (VmSetRequest): Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields
            stay as they are.
            Labels and description apply at once; CPUs and memory when the VM next starts (at once
            when it is stopped).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | VmSetResponse]
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
    body: VmSetRequest,

) -> ApiError | VmSetResponse | None:
    """ Change a VM's labels and description (at once) and its CPUs and memory (when it next
    starts; at once when stopped). Refused, with nothing changed, while the VM migrates or
    is deleted, or when the node cannot give what is asked.

    Args:
        name (str):
        body (VmSetRequest): Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields
            stay as they are.
            Labels and description apply at once; CPUs and memory when the VM next starts (at once
            when it is stopped).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | VmSetResponse
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
