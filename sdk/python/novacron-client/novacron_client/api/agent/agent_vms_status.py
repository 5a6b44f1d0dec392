from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.vm_status_report import VmStatusReport
from typing import cast



def _get_kwargs(
    project: str,
    name: str,
    *,
    body: VmStatusReport,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/agent/vms/{project}/{name}/status".format(project=quote(str(project), safe=""),name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | ApiError | None:
    if response.status_code == 200:
        response_200 = cast(Any, None)
        return response_200

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Any | ApiError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    project: str,
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: VmStatusReport,

) -> Response[Any | ApiError]:
    """ What a node observed about one of its VMs.

    Args:
        project (str):
        name (str):
        body (VmStatusReport): Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ApiError]
     """


    kwargs = _get_kwargs(
        project=project,
name=name,
body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    project: str,
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: VmStatusReport,

) -> Any | ApiError | None:
    """ What a node observed about one of its VMs.

    Args:
        project (str):
        name (str):
        body (VmStatusReport): Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ApiError
     """


    return sync_detailed(
        project=project,
name=name,
client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    project: str,
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: VmStatusReport,

) -> Response[Any | ApiError]:
    """ What a node observed about one of its VMs.

    Args:
        project (str):
        name (str):
        body (VmStatusReport): Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ApiError]
     """


    kwargs = _get_kwargs(
        project=project,
name=name,
body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    project: str,
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: VmStatusReport,

) -> Any | ApiError | None:
    """ What a node observed about one of its VMs.

    Args:
        project (str):
        name (str):
        body (VmStatusReport): Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ApiError
     """


    return (await asyncio_detailed(
        project=project,
name=name,
client=client,
body=body,

    )).parsed
