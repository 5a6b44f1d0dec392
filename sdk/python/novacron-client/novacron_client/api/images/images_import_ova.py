from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.ova_import import OvaImport
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: list[int],

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/images/{name}/import-ova".format(name=quote(str(name), safe=""),),
    }

    _kwargs["content"] = body.payload
    headers["Content-Type"] = "application/octet-stream"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | OvaImport | None:
    if response.status_code == 200:
        response_200 = OvaImport.from_dict(response.json())



        return response_200

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | OvaImport]:
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
    body: list[int],

) -> Response[ApiError | OvaImport]:
    """ Import an OVA appliance (the request body is the .ova tar): every disk its OVF descriptor
    names becomes a qcow2 image (`NAME`, `NAME-disk2`, ...), all of them or none, and the answer
    carries the OVF's CPUs, memory and NICs with the matching `vm create` command.

    Args:
        name (str):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OvaImport]
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
    body: list[int],

) -> ApiError | OvaImport | None:
    """ Import an OVA appliance (the request body is the .ova tar): every disk its OVF descriptor
    names becomes a qcow2 image (`NAME`, `NAME-disk2`, ...), all of them or none, and the answer
    carries the OVF's CPUs, memory and NICs with the matching `vm create` command.

    Args:
        name (str):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OvaImport
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
    body: list[int],

) -> Response[ApiError | OvaImport]:
    """ Import an OVA appliance (the request body is the .ova tar): every disk its OVF descriptor
    names becomes a qcow2 image (`NAME`, `NAME-disk2`, ...), all of them or none, and the answer
    carries the OVF's CPUs, memory and NICs with the matching `vm create` command.

    Args:
        name (str):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OvaImport]
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
    body: list[int],

) -> ApiError | OvaImport | None:
    """ Import an OVA appliance (the request body is the .ova tar): every disk its OVF descriptor
    names becomes a qcow2 image (`NAME`, `NAME-disk2`, ...), all of them or none, and the answer
    carries the OVF's CPUs, memory and NICs with the matching `vm create` command.

    Args:
        name (str):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OvaImport
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
