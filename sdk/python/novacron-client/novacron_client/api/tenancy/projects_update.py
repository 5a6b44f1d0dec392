from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.project import Project
from ...models.project_set_request import ProjectSetRequest
from typing import cast



def _get_kwargs(
    project: str,
    *,
    body: ProjectSetRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/projects/{project}".format(project=quote(str(project), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | Project | None:
    if response.status_code == 200:
        response_200 = Project.from_dict(response.json())



        return response_200

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | Project]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    project: str,
    *,
    client: AuthenticatedClient | Client,
    body: ProjectSetRequest,

) -> Response[ApiError | Project]:
    """ Change a project's description or limits (cluster-admin); limits not given stay.

    Args:
        project (str):
        body (ProjectSetRequest): Body of `PUT /api/v1/projects/{project}`: the fields given
            replace the current ones (the
            limits not given stay as they are).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Project]
     """


    kwargs = _get_kwargs(
        project=project,
body=body,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    project: str,
    *,
    client: AuthenticatedClient | Client,
    body: ProjectSetRequest,

) -> ApiError | Project | None:
    """ Change a project's description or limits (cluster-admin); limits not given stay.

    Args:
        project (str):
        body (ProjectSetRequest): Body of `PUT /api/v1/projects/{project}`: the fields given
            replace the current ones (the
            limits not given stay as they are).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Project
     """


    return sync_detailed(
        project=project,
client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    project: str,
    *,
    client: AuthenticatedClient | Client,
    body: ProjectSetRequest,

) -> Response[ApiError | Project]:
    """ Change a project's description or limits (cluster-admin); limits not given stay.

    Args:
        project (str):
        body (ProjectSetRequest): Body of `PUT /api/v1/projects/{project}`: the fields given
            replace the current ones (the
            limits not given stay as they are).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | Project]
     """


    kwargs = _get_kwargs(
        project=project,
body=body,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    project: str,
    *,
    client: AuthenticatedClient | Client,
    body: ProjectSetRequest,

) -> ApiError | Project | None:
    """ Change a project's description or limits (cluster-admin); limits not given stay.

    Args:
        project (str):
        body (ProjectSetRequest): Body of `PUT /api/v1/projects/{project}`: the fields given
            replace the current ones (the
            limits not given stay as they are).

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | Project
     """


    return (await asyncio_detailed(
        project=project,
client=client,
body=body,

    )).parsed
