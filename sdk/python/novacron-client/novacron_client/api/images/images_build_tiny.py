from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.build_tiny_request import BuildTinyRequest
from ...models.image_type_0 import ImageType0
from ...models.image_type_1 import ImageType1
from ...models.image_type_2 import ImageType2
from typing import cast



def _get_kwargs(
    *,
    body: BuildTinyRequest,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/images/build-tiny",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs



def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ApiError | ImageType0 | ImageType1 | ImageType2 | None:
    if response.status_code == 200:
        def _parse_response_200(data: object) -> ImageType0 | ImageType1 | ImageType2:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_0 = ImageType0.from_dict(data)



                return componentsschemas_image_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_image_type_1 = ImageType1.from_dict(data)



                return componentsschemas_image_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_image_type_2 = ImageType2.from_dict(data)



            return componentsschemas_image_type_2

        response_200 = _parse_response_200(response.json())

        return response_200

    if response.status_code == 409:
        response_409 = ApiError.from_dict(response.json())



        return response_409

    if response.status_code == 500:
        response_500 = ApiError.from_dict(response.json())



        return response_500

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BuildTinyRequest,

) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
    """ Build the tiny direct-boot image from the host kernel and busybox (no download), with the
    host's qemu-guest-agent when it has one (`vm exec`).

    Args:
        body (BuildTinyRequest): Body of `POST /api/v1/images/build-tiny`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ImageType0 | ImageType1 | ImageType2]
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
    body: BuildTinyRequest,

) -> ApiError | ImageType0 | ImageType1 | ImageType2 | None:
    """ Build the tiny direct-boot image from the host kernel and busybox (no download), with the
    host's qemu-guest-agent when it has one (`vm exec`).

    Args:
        body (BuildTinyRequest): Body of `POST /api/v1/images/build-tiny`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ImageType0 | ImageType1 | ImageType2
     """


    return sync_detailed(
        client=client,
body=body,

    ).parsed

async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: BuildTinyRequest,

) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
    """ Build the tiny direct-boot image from the host kernel and busybox (no download), with the
    host's qemu-guest-agent when it has one (`vm exec`).

    Args:
        body (BuildTinyRequest): Body of `POST /api/v1/images/build-tiny`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ImageType0 | ImageType1 | ImageType2]
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
    body: BuildTinyRequest,

) -> ApiError | ImageType0 | ImageType1 | ImageType2 | None:
    """ Build the tiny direct-boot image from the host kernel and busybox (no download), with the
    host's qemu-guest-agent when it has one (`vm exec`).

    Args:
        body (BuildTinyRequest): Body of `POST /api/v1/images/build-tiny`.

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ImageType0 | ImageType1 | ImageType2
     """


    return (await asyncio_detailed(
        client=client,
body=body,

    )).parsed
