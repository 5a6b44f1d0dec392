from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ImageUrlImportRequest")



@_attrs_define
class ImageUrlImportRequest:
    """ Body of `POST /api/v1/images/{name}/import-url`: the control plane downloads `url` and imports the file as
    `image import` does with a local one.

        Attributes:
            url (str): An `http://` or `https://` URL.
            public (bool | Unset): Make it a public image, which every project can use (cluster admins only).
            sha256 (None | str | Unset): The file's expected SHA-256 (64 hex digits): checked before the image is published.
     """

    url: str
    public: bool | Unset = UNSET
    sha256: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        url = self.url

        public = self.public

        sha256: None | str | Unset
        if isinstance(self.sha256, Unset):
            sha256 = UNSET
        else:
            sha256 = self.sha256


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "url": url,
        })
        if public is not UNSET:
            field_dict["public"] = public
        if sha256 is not UNSET:
            field_dict["sha256"] = sha256

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        url = d.pop("url")

        public = d.pop("public", UNSET)

        def _parse_sha256(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sha256 = _parse_sha256(d.pop("sha256", UNSET))


        image_url_import_request = cls(
            url=url,
            public=public,
            sha256=sha256,
        )

        return image_url_import_request

