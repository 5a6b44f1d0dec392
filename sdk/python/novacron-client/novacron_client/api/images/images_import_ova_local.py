from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.ova_import import OvaImport
from ...models.ova_local_import_request import OvaLocalImportRequest
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: OvaLocalImportRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/images/{name}/import-ova-local".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | OvaImport | None:
    if response.status_code == 200:
        response_200 = OvaImport.from_dict(response.json())



        return response_200

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | OvaImport]:
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
    body: OvaLocalImportRequest,

) -> Response[ApiError | OvaImport]:
    """ Import an OVA appliance handed to this replica's local-files socket (`GET
    /api/v1/local-files`) as `PUT .../import-ova` does an upload. The archive is read through
    the descriptor; each disk is read from its range of it while a read lease holds it still, or
    else copied out of it before it is vetted. It runs as an `image.import` operation; the answer
    comes when every disk is imported.

    Args:
        name (str):
        body (OvaLocalImportRequest): Body of `POST /api/v1/images/{name}/import-ova-local`:
            imports the OVA appliance handed to
            the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an
            upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OvaImport]
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
    body: OvaLocalImportRequest,

) -> ApiError | OvaImport | None:
    """ Import an OVA appliance handed to this replica's local-files socket (`GET
    /api/v1/local-files`) as `PUT .../import-ova` does an upload. The archive is read through
    the descriptor; each disk is read from its range of it while a read lease holds it still, or
    else copied out of it before it is vetted. It runs as an `image.import` operation; the answer
    comes when every disk is imported.

    Args:
        name (str):
        body (OvaLocalImportRequest): Body of `POST /api/v1/images/{name}/import-ova-local`:
            imports the OVA appliance handed to
            the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an
            upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OvaImport
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
    body: OvaLocalImportRequest,

) -> Response[ApiError | OvaImport]:
    """ Import an OVA appliance handed to this replica's local-files socket (`GET
    /api/v1/local-files`) as `PUT .../import-ova` does an upload. The archive is read through
    the descriptor; each disk is read from its range of it while a read lease holds it still, or
    else copied out of it before it is vetted. It runs as an `image.import` operation; the answer
    comes when every disk is imported.

    Args:
        name (str):
        body (OvaLocalImportRequest): Body of `POST /api/v1/images/{name}/import-ova-local`:
            imports the OVA appliance handed to
            the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an
            upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OvaImport]
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
    body: OvaLocalImportRequest,

) -> ApiError | OvaImport | None:
    """ Import an OVA appliance handed to this replica's local-files socket (`GET
    /api/v1/local-files`) as `PUT .../import-ova` does an upload. The archive is read through
    the descriptor; each disk is read from its range of it while a read lease holds it still, or
    else copied out of it before it is vetted. It runs as an `image.import` operation; the answer
    comes when every disk is imported.

    Args:
        name (str):
        body (OvaLocalImportRequest): Body of `POST /api/v1/images/{name}/import-ova-local`:
            imports the OVA appliance handed to
            the replica's local-files socket (see [`LocalFiles`]) as `PUT .../import-ova` does an
            upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OvaImport
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
