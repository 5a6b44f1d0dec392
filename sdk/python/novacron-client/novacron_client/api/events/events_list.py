from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.event import Event
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    *,
    project: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    resource: str | Unset = UNSET,
    after: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    if not isinstance(last_event_id, Unset):
        headers["Last-Event-ID"] = last_event_id



    

    params: dict[str, Any] = {}

    params["project"] = project

    params["kind"] = kind

    params["resource"] = resource

    params["after"] = after

    params["follow"] = follow


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/events",
        "params": params,
    }


    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | Event | None:
    if response.status_code == 200:
        response_200 = Event.from_dict(response.text)



        return response_200

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | Event]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    resource: str | Unset = UNSET,
    after: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> Response[ApiError | Event]:
    """ Events as they happen (Server-Sent Events): VM state, operations, migrations, nodes,
    backups, HA actions, networks and audit records, each with an id to resume from with `Last-Event-
    ID`. The
    control plane retains the last 10,000 events; a client resuming from before them first
    gets an `event: gap` frame.

    Args:
        project (str | Unset):
        kind (str | Unset):
        resource (str | Unset):
        after (str | Unset):
        follow (bool | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Event]
     """


    kwargs = _get_kwargs(
        project=project,
kind=kind,
resource=resource,
after=after,
follow=follow,
last_event_id=last_event_id,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    resource: str | Unset = UNSET,
    after: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> ApiError | Event | None:
    """ Events as they happen (Server-Sent Events): VM state, operations, migrations, nodes,
    backups, HA actions, networks and audit records, each with an id to resume from with `Last-Event-
    ID`. The
    control plane retains the last 10,000 events; a client resuming from before them first
    gets an `event: gap` frame.

    Args:
        project (str | Unset):
        kind (str | Unset):
        resource (str | Unset):
        after (str | Unset):
        follow (bool | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Event
     """


    return sync_detailed(
        client=client,
project=project,
kind=kind,
resource=resource,
after=after,
follow=follow,
last_event_id=last_event_id,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    resource: str | Unset = UNSET,
    after: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> Response[ApiError | Event]:
    """ Events as they happen (Server-Sent Events): VM state, operations, migrations, nodes,
    backups, HA actions, networks and audit records, each with an id to resume from with `Last-Event-
    ID`. The
    control plane retains the last 10,000 events; a client resuming from before them first
    gets an `event: gap` frame.

    Args:
        project (str | Unset):
        kind (str | Unset):
        resource (str | Unset):
        after (str | Unset):
        follow (bool | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Event]
     """


    kwargs = _get_kwargs(
        project=project,
kind=kind,
resource=resource,
after=after,
follow=follow,
last_event_id=last_event_id,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    project: str | Unset = UNSET,
    kind: str | Unset = UNSET,
    resource: str | Unset = UNSET,
    after: str | Unset = UNSET,
    follow: bool | Unset = UNSET,
    last_event_id: None | str | Unset = UNSET,

) -> ApiError | Event | None:
    """ Events as they happen (Server-Sent Events): VM state, operations, migrations, nodes,
    backups, HA actions, networks and audit records, each with an id to resume from with `Last-Event-
    ID`. The
    control plane retains the last 10,000 events; a client resuming from before them first
    gets an `event: gap` frame.

    Args:
        project (str | Unset):
        kind (str | Unset):
        resource (str | Unset):
        after (str | Unset):
        follow (bool | Unset):
        last_event_id (None | str | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Event
     """


    return (await asyncio_detailed(
        client=client,
project=project,
kind=kind,
resource=resource,
after=after,
follow=follow,
last_event_id=last_event_id,

    )).parsed
