from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.desired_vms import DesiredVms
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    after: int | None | Unset = UNSET,
    wait_seconds: int | None | Unset = UNSET,
    after_groups: int | None | Unset = UNSET,

) -> dict[str, Any]:
    

    

    params: dict[str, Any] = {}

    json_after: int | None | Unset
    if isinstance(after, Unset):
        json_after = UNSET
    else:
        json_after = after
    params["after"] = json_after

    json_wait_seconds: int | None | Unset
    if isinstance(wait_seconds, Unset):
        json_wait_seconds = UNSET
    else:
        json_wait_seconds = wait_seconds
    params["wait_seconds"] = json_wait_seconds

    json_after_groups: int | None | Unset
    if isinstance(after_groups, Unset):
        json_after_groups = UNSET
    else:
        json_after_groups = after_groups
    params["after_groups"] = json_after_groups


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/agent/vms",
        "params": params,
    }


    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> DesiredVms | None:
    if response.status_code == 200:
        response_200 = DesiredVms.from_dict(response.json())



        return response_200

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[DesiredVms]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    after: int | None | Unset = UNSET,
    wait_seconds: int | None | Unset = UNSET,
    after_groups: int | None | Unset = UNSET,

) -> Response[DesiredVms]:
    """ The VMs placed on the calling node.

    Args:
        after (int | None | Unset):
        wait_seconds (int | None | Unset):
        after_groups (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DesiredVms]
     """


    kwargs = _get_kwargs(
        after=after,
wait_seconds=wait_seconds,
after_groups=after_groups,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    after: int | None | Unset = UNSET,
    wait_seconds: int | None | Unset = UNSET,
    after_groups: int | None | Unset = UNSET,

) -> DesiredVms | None:
    """ The VMs placed on the calling node.

    Args:
        after (int | None | Unset):
        wait_seconds (int | None | Unset):
        after_groups (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DesiredVms
     """


    return sync_detailed(
        client=client,
after=after,
wait_seconds=wait_seconds,
after_groups=after_groups,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    after: int | None | Unset = UNSET,
    wait_seconds: int | None | Unset = UNSET,
    after_groups: int | None | Unset = UNSET,

) -> Response[DesiredVms]:
    """ The VMs placed on the calling node.

    Args:
        after (int | None | Unset):
        wait_seconds (int | None | Unset):
        after_groups (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[DesiredVms]
     """


    kwargs = _get_kwargs(
        after=after,
wait_seconds=wait_seconds,
after_groups=after_groups,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    after: int | None | Unset = UNSET,
    wait_seconds: int | None | Unset = UNSET,
    after_groups: int | None | Unset = UNSET,

) -> DesiredVms | None:
    """ The VMs placed on the calling node.

    Args:
        after (int | None | Unset):
        wait_seconds (int | None | Unset):
        after_groups (int | None | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        DesiredVms
     """


    return (await asyncio_detailed(
        client=client,
after=after,
wait_seconds=wait_seconds,
after_groups=after_groups,

    )).parsed
