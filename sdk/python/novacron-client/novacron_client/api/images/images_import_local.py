from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.image_local_import_request import ImageLocalImportRequest
from ...models.operation_ref import OperationRef
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: ImageLocalImportRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/images/{name}/import-local".format(name=quote(str(name), safe=""),),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | OperationRef | None:
    if response.status_code == 202:
        response_202 = OperationRef.from_dict(response.json())



        return response_202

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | OperationRef]:
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
    body: ImageLocalImportRequest,

) -> Response[ApiError | OperationRef]:
    """ Import a file handed to this replica's local-files socket (`GET /api/v1/local-files`) as an
    operation with progress: its bytes are copied from the descriptor into the import's scratch
    and imported as `PUT .../import` does an upload.

    Args:
        name (str):
        body (ImageLocalImportRequest): Body of `POST /api/v1/images/{name}/import-local`: imports
            the file handed to the replica's
            local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
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
    body: ImageLocalImportRequest,

) -> ApiError | OperationRef | None:
    """ Import a file handed to this replica's local-files socket (`GET /api/v1/local-files`) as an
    operation with progress: its bytes are copied from the descriptor into the import's scratch
    and imported as `PUT .../import` does an upload.

    Args:
        name (str):
        body (ImageLocalImportRequest): Body of `POST /api/v1/images/{name}/import-local`: imports
            the file handed to the replica's
            local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
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
    body: ImageLocalImportRequest,

) -> Response[ApiError | OperationRef]:
    """ Import a file handed to this replica's local-files socket (`GET /api/v1/local-files`) as an
    operation with progress: its bytes are copied from the descriptor into the import's scratch
    and imported as `PUT .../import` does an upload.

    Args:
        name (str):
        body (ImageLocalImportRequest): Body of `POST /api/v1/images/{name}/import-local`: imports
            the file handed to the replica's
            local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | OperationRef]
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
    body: ImageLocalImportRequest,

) -> ApiError | OperationRef | None:
    """ Import a file handed to this replica's local-files socket (`GET /api/v1/local-files`) as an
    operation with progress: its bytes are copied from the descriptor into the import's scratch
    and imported as `PUT .../import` does an upload.

    Args:
        name (str):
        body (ImageLocalImportRequest): Body of `POST /api/v1/images/{name}/import-local`: imports
            the file handed to the replica's
            local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | OperationRef
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,

    )).parsed
