from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.evacuate_request import EvacuateRequest
from ...models.evacuation_plan import EvacuationPlan
from typing import cast



def _get_kwargs(
    *,
    body: EvacuateRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/evacuations/plan",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | EvacuationPlan | None:
    if response.status_code == 200:
        response_200 = EvacuationPlan.from_dict(response.json())



        return response_200

    if response.status_code == 422:
        response_422 = ApiError.from_dict(response.json())



        return response_422

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | EvacuationPlan]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: EvacuateRequest,

) -> Response[ApiError | EvacuationPlan]:
    """ Plans the evacuation of a node (ITP): which VM goes where (the scheduler's
    `plan_evacuation`, largest VM first, each with its live migration's rules), in which order
    and how many at once. Paused VMs first (they dirty no memory), then running ones from the smallest
    memory
    to the largest, so many VMs leave early and the big ones get the link to themselves at the
    end; VMs of one image are kept next to each other. Stopped VMs are not moved.

    Args:
        body (EvacuateRequest): Body of `POST /api/v1/evacuations/plan`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | EvacuationPlan]
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
    body: EvacuateRequest,

) -> ApiError | EvacuationPlan | None:
    """ Plans the evacuation of a node (ITP): which VM goes where (the scheduler's
    `plan_evacuation`, largest VM first, each with its live migration's rules), in which order
    and how many at once. Paused VMs first (they dirty no memory), then running ones from the smallest
    memory
    to the largest, so many VMs leave early and the big ones get the link to themselves at the
    end; VMs of one image are kept next to each other. Stopped VMs are not moved.

    Args:
        body (EvacuateRequest): Body of `POST /api/v1/evacuations/plan`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | EvacuationPlan
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: EvacuateRequest,

) -> Response[ApiError | EvacuationPlan]:
    """ Plans the evacuation of a node (ITP): which VM goes where (the scheduler's
    `plan_evacuation`, largest VM first, each with its live migration's rules), in which order
    and how many at once. Paused VMs first (they dirty no memory), then running ones from the smallest
    memory
    to the largest, so many VMs leave early and the big ones get the link to themselves at the
    end; VMs of one image are kept next to each other. Stopped VMs are not moved.

    Args:
        body (EvacuateRequest): Body of `POST /api/v1/evacuations/plan`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | EvacuationPlan]
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
    body: EvacuateRequest,

) -> ApiError | EvacuationPlan | None:
    """ Plans the evacuation of a node (ITP): which VM goes where (the scheduler's
    `plan_evacuation`, largest VM first, each with its live migration's rules), in which order
    and how many at once. Paused VMs first (they dirty no memory), then running ones from the smallest
    memory
    to the largest, so many VMs leave early and the big ones get the link to themselves at the
    end; VMs of one image are kept next to each other. Stopped VMs are not moved.

    Args:
        body (EvacuateRequest): Body of `POST /api/v1/evacuations/plan`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | EvacuationPlan
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
