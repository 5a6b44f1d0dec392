from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.security_group import SecurityGroup
from ...models.security_group_create_request import SecurityGroupCreateRequest
from typing import cast



def _get_kwargs(
    *,
    body: SecurityGroupCreateRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/security-groups",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | SecurityGroup | None:
    if response.status_code == 201:
        response_201 = SecurityGroup.from_dict(response.json())



        return response_201

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | SecurityGroup]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: SecurityGroupCreateRequest,

) -> Response[ApiError | SecurityGroup]:
    """ Create a security group (no rules yet: a VM in it takes in nothing until rules are
    added). Refused (409) when the name is taken in the project.

    Args:
        body (SecurityGroupCreateRequest): Body of `POST /api/v1/security-groups`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | SecurityGroup]
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
    body: SecurityGroupCreateRequest,

) -> ApiError | SecurityGroup | None:
    """ Create a security group (no rules yet: a VM in it takes in nothing until rules are
    added). Refused (409) when the name is taken in the project.

    Args:
        body (SecurityGroupCreateRequest): Body of `POST /api/v1/security-groups`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | SecurityGroup
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: SecurityGroupCreateRequest,

) -> Response[ApiError | SecurityGroup]:
    """ Create a security group (no rules yet: a VM in it takes in nothing until rules are
    added). Refused (409) when the name is taken in the project.

    Args:
        body (SecurityGroupCreateRequest): Body of `POST /api/v1/security-groups`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | SecurityGroup]
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
    body: SecurityGroupCreateRequest,

) -> ApiError | SecurityGroup | None:
    """ Create a security group (no rules yet: a VM in it takes in nothing until rules are
    added). Refused (409) when the name is taken in the project.

    Args:
        body (SecurityGroupCreateRequest): Body of `POST /api/v1/security-groups`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | SecurityGroup
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
