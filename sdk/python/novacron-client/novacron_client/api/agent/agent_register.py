from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.register_request import RegisterRequest
from ...models.register_response import RegisterResponse
from typing import cast



def _get_kwargs(
    *,
    body: RegisterRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/agent/register",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | RegisterResponse | None:
    if response.status_code == 200:
        response_200 = RegisterResponse.from_dict(response.json())



        return response_200

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | RegisterResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: RegisterRequest,

) -> Response[ApiError | RegisterResponse]:
    """ Register a node (join token), or re-register it (its node token), which also renews its
    certificate.

    Args:
        body (RegisterRequest): Body of `POST /api/v1/agent/register` (authenticated with the join
            token, or with the
            node's own token when it registers again).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | RegisterResponse]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    body: RegisterRequest,

) -> ApiError | RegisterResponse | None:
    """ Register a node (join token), or re-register it (its node token), which also renews its
    certificate.

    Args:
        body (RegisterRequest): Body of `POST /api/v1/agent/register` (authenticated with the join
            token, or with the
            node's own token when it registers again).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | RegisterResponse
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: RegisterRequest,

) -> Response[ApiError | RegisterResponse]:
    """ Register a node (join token), or re-register it (its node token), which also renews its
    certificate.

    Args:
        body (RegisterRequest): Body of `POST /api/v1/agent/register` (authenticated with the join
            token, or with the
            node's own token when it registers again).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | RegisterResponse]
     """


    kwargs = _get_kwargs(
        body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: RegisterRequest,

) -> ApiError | RegisterResponse | None:
    """ Register a node (join token), or re-register it (its node token), which also renews its
    certificate.

    Args:
        body (RegisterRequest): Body of `POST /api/v1/agent/register` (authenticated with the join
            token, or with the
            node's own token when it registers again).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | RegisterResponse
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
