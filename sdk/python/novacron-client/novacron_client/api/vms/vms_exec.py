from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.exec_request import ExecRequest
from ...models.exec_result import ExecResult
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: ExecRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/vms/{name}/exec".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | ExecResult | None:
    if response.status_code == 200:
        response_200 = ExecResult.from_dict(response.json())



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

    if response.status_code == 503:
        response_503 = ApiError.from_dict(response.json())



        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | ExecResult]:
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
    body: ExecRequest,

) -> Response[ApiError | ExecResult]:
    """ Run a command in the VM's guest (through qemu-guest-agent, which the guest must run) and
    answer its exit status and output once it ended.

    Args:
        name (str):
        body (ExecRequest): Body of `POST /api/v1/vms/{name}/exec`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ExecResult]
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
    body: ExecRequest,

) -> ApiError | ExecResult | None:
    """ Run a command in the VM's guest (through qemu-guest-agent, which the guest must run) and
    answer its exit status and output once it ended.

    Args:
        name (str):
        body (ExecRequest): Body of `POST /api/v1/vms/{name}/exec`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ExecResult
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
    body: ExecRequest,

) -> Response[ApiError | ExecResult]:
    """ Run a command in the VM's guest (through qemu-guest-agent, which the guest must run) and
    answer its exit status and output once it ended.

    Args:
        name (str):
        body (ExecRequest): Body of `POST /api/v1/vms/{name}/exec`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ExecResult]
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
    body: ExecRequest,

) -> ApiError | ExecResult | None:
    """ Run a command in the VM's guest (through qemu-guest-agent, which the guest must run) and
    answer its exit status and output once it ended.

    Args:
        name (str):
        body (ExecRequest): Body of `POST /api/v1/vms/{name}/exec`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ExecResult
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
