from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.security_rule_added import SecurityRuleAdded
from ...models.security_rule_request import SecurityRuleRequest
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: SecurityRuleRequest,
    project: None | str | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    params: dict[str, Any] = {}

    json_project: None | str | Unset
    if isinstance(project, Unset):
        json_project = UNSET
    else:
        json_project = project
    params["project"] = json_project


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/security-groups/{name}/rules".format(name=quote(str(name), safe=""),),
        "params": params,
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | SecurityRuleAdded | None:
    if response.status_code == 201:
        response_201 = SecurityRuleAdded.from_dict(response.json())



        return response_201

    if response.status_code == 400:
        response_400 = ApiError.from_dict(response.json())



        return response_400

    if response.status_code == 404:
        response_404 = ApiError.from_dict(response.json())



        return response_404

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | SecurityRuleAdded]:
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
    body: SecurityRuleRequest,
    project: None | str | Unset = UNSET,

) -> Response[ApiError | SecurityRuleAdded]:
    """ Add a rule (`in tcp/80 from 10.0.0.0/8`, `in any from group lb`, `out udp/53 to
    10.0.0.2`); enforced on every NIC of the group's VMs within about a second.

    Args:
        name (str):
        project (None | str | Unset):
        body (SecurityRuleRequest): Body of `POST /api/v1/security-groups/{name}/rules`: `--in
            tcp/80 --from 10.0.0.0/8`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | SecurityRuleAdded]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,
project=project,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: SecurityRuleRequest,
    project: None | str | Unset = UNSET,

) -> ApiError | SecurityRuleAdded | None:
    """ Add a rule (`in tcp/80 from 10.0.0.0/8`, `in any from group lb`, `out udp/53 to
    10.0.0.2`); enforced on every NIC of the group's VMs within about a second.

    Args:
        name (str):
        project (None | str | Unset):
        body (SecurityRuleRequest): Body of `POST /api/v1/security-groups/{name}/rules`: `--in
            tcp/80 --from 10.0.0.0/8`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | SecurityRuleAdded
     """


    return sync_detailed(
        name=name,
client=client,
body=body,
project=project,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: SecurityRuleRequest,
    project: None | str | Unset = UNSET,

) -> Response[ApiError | SecurityRuleAdded]:
    """ Add a rule (`in tcp/80 from 10.0.0.0/8`, `in any from group lb`, `out udp/53 to
    10.0.0.2`); enforced on every NIC of the group's VMs within about a second.

    Args:
        name (str):
        project (None | str | Unset):
        body (SecurityRuleRequest): Body of `POST /api/v1/security-groups/{name}/rules`: `--in
            tcp/80 --from 10.0.0.0/8`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | SecurityRuleAdded]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,
project=project,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: SecurityRuleRequest,
    project: None | str | Unset = UNSET,

) -> ApiError | SecurityRuleAdded | None:
    """ Add a rule (`in tcp/80 from 10.0.0.0/8`, `in any from group lb`, `out udp/53 to
    10.0.0.2`); enforced on every NIC of the group's VMs within about a second.

    Args:
        name (str):
        project (None | str | Unset):
        body (SecurityRuleRequest): Body of `POST /api/v1/security-groups/{name}/rules`: `--in
            tcp/80 --from 10.0.0.0/8`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | SecurityRuleAdded
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,
project=project,

    )).parsed
