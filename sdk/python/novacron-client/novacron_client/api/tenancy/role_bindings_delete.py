from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.role_binding import RoleBinding
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    user: str,
    *,
    project: str | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    params["project"] = project


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/api/v1/role-bindings/{user}".format(user=quote(str(user), safe=""),),
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | RoleBinding | None:
    if response.status_code == 200:
        response_200 = RoleBinding.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | RoleBinding]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    user: str,
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,

) -> Response[ApiError | RoleBinding]:
    """ Remove a user's role binding in a project (`?project=`) or in the cluster.

    Args:
        user (str):
        project (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | RoleBinding]
     """


    kwargs = _get_kwargs(
        user=user,
project=project,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    user: str,
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,

) -> ApiError | RoleBinding | None:
    """ Remove a user's role binding in a project (`?project=`) or in the cluster.

    Args:
        user (str):
        project (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | RoleBinding
     """


    return sync_detailed(
        user=user,
client=client,
project=project,

    ).parsed

async def asyncio_detailed(
    user: str,
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,

) -> Response[ApiError | RoleBinding]:
    """ Remove a user's role binding in a project (`?project=`) or in the cluster.

    Args:
        user (str):
        project (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | RoleBinding]
     """


    kwargs = _get_kwargs(
        user=user,
project=project,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    user: str,
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,

) -> ApiError | RoleBinding | None:
    """ Remove a user's role binding in a project (`?project=`) or in the cluster.

    Args:
        user (str):
        project (str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | RoleBinding
     """


    return (await asyncio_detailed(
        user=user,
client=client,
project=project,

    )).parsed
