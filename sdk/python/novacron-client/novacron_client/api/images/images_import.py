from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ...client import AuthenticatedClient, Client
from ...types import Response, UNSET
from ... import errors

from ...models.api_error import ApiError
from ...models.image_type_0 import ImageType0
from ...models.image_type_1 import ImageType1
from ...models.image_type_2 import ImageType2
from ...types import UNSET, Unset
from typing import cast



def _get_kwargs(
    name: str,
    *,
    body: list[int],
    filename: None | str | Unset = UNSET,
    sha256: None | str | Unset = UNSET,
    public: bool | None | Unset = UNSET,

) -> dict[str, Any]:
    headers: dict[str, Any] = {}


    

    params: dict[str, Any] = {}

    json_filename: None | str | Unset
    if isinstance(filename, Unset):
        json_filename = UNSET
    else:
        json_filename = filename
    params["filename"] = json_filename

    json_sha256: None | str | Unset
    if isinstance(sha256, Unset):
        json_sha256 = UNSET
    else:
        json_sha256 = sha256
    params["sha256"] = json_sha256

    json_public: bool | None | Unset
    if isinstance(public, Unset):
        json_public = UNSET
    else:
        json_public = public
    params["public"] = json_public


    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}


    _kwargs: dict[str, Any] = {
        "method": "put",
        "url": "/api/v1/images/{name}/import".format(name=quote(str(name), safe=""),),
        "params": params,
    }

    _kwargs["content"] = body.payload
    headers["Content-Type"] = "application/octet-stream"

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
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
    body: list[int],
    filename: None | str | Unset = UNSET,
    sha256: None | str | Unset = UNSET,
    public: bool | None | Unset = UNSET,

) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
    """ Import a disk image or installation medium (the request body is the file): qcow2 and raw
    are kept as they are, VMDK, VHDX and VHD are converted to qcow2, an ISO 9660 file becomes
    an image of kind `iso`. The kind is read from the content and vetted; anything that is not
    a usable image is refused and leaves nothing behind.

    Args:
        name (str):
        filename (None | str | Unset):
        sha256 (None | str | Unset):
        public (bool | None | Unset):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ImageType0 | ImageType1 | ImageType2]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,
filename=filename,
sha256=sha256,
public=public,

    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)

def sync(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: list[int],
    filename: None | str | Unset = UNSET,
    sha256: None | str | Unset = UNSET,
    public: bool | None | Unset = UNSET,

) -> ApiError | ImageType0 | ImageType1 | ImageType2 | None:
    """ Import a disk image or installation medium (the request body is the file): qcow2 and raw
    are kept as they are, VMDK, VHDX and VHD are converted to qcow2, an ISO 9660 file becomes
    an image of kind `iso`. The kind is read from the content and vetted; anything that is not
    a usable image is refused and leaves nothing behind.

    Args:
        name (str):
        filename (None | str | Unset):
        sha256 (None | str | Unset):
        public (bool | None | Unset):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ImageType0 | ImageType1 | ImageType2
     """


    return sync_detailed(
        name=name,
client=client,
body=body,
filename=filename,
sha256=sha256,
public=public,

    ).parsed

async def asyncio_detailed(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: list[int],
    filename: None | str | Unset = UNSET,
    sha256: None | str | Unset = UNSET,
    public: bool | None | Unset = UNSET,

) -> Response[ApiError | ImageType0 | ImageType1 | ImageType2]:
    """ Import a disk image or installation medium (the request body is the file): qcow2 and raw
    are kept as they are, VMDK, VHDX and VHD are converted to qcow2, an ISO 9660 file becomes
    an image of kind `iso`. The kind is read from the content and vetted; anything that is not
    a usable image is refused and leaves nothing behind.

    Args:
        name (str):
        filename (None | str | Unset):
        sha256 (None | str | Unset):
        public (bool | None | Unset):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ApiError | ImageType0 | ImageType1 | ImageType2]
     """


    kwargs = _get_kwargs(
        name=name,
body=body,
filename=filename,
sha256=sha256,
public=public,

    )

    response = await client.get_async_httpx_client().request(
        **kwargs
    )

    return _build_response(client=client, response=response)

async def asyncio(
    name: str,
    *,
    client: AuthenticatedClient | Client,
    body: list[int],
    filename: None | str | Unset = UNSET,
    sha256: None | str | Unset = UNSET,
    public: bool | None | Unset = UNSET,

) -> ApiError | ImageType0 | ImageType1 | ImageType2 | None:
    """ Import a disk image or installation medium (the request body is the file): qcow2 and raw
    are kept as they are, VMDK, VHDX and VHD are converted to qcow2, an ISO 9660 file becomes
    an image of kind `iso`. The kind is read from the content and vetted; anything that is not
    a usable image is refused and leaves nothing behind.

    Args:
        name (str):
        filename (None | str | Unset):
        sha256 (None | str | Unset):
        public (bool | None | Unset):
        body (list[int]):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ApiError | ImageType0 | ImageType1 | ImageType2
     """


    return (await asyncio_detailed(
        name=name,
client=client,
body=body,
filename=filename,
sha256=sha256,
public=public,

    )).parsed
