from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ImageLocalImportRequest")



@_attrs_define
class ImageLocalImportRequest:
    """ Body of `POST /api/v1/images/{name}/import-local`: imports the file handed to the replica's
    local-files socket under `ticket`, as an operation, as `PUT .../import` would its upload.

        Attributes:
            ticket (str): What the local-files socket answered for the descriptor (one use, valid for a minute).
            filename (None | str | Unset): The file's name: one ending in `.iso` must be an ISO 9660 image.
            public (bool | Unset): Make it a public image, which every project can use (cluster admins only).
            sha256 (None | str | Unset): The file's expected SHA-256 (64 hex digits): checked before the image is published.
     """

    ticket: str
    filename: None | str | Unset = UNSET
    public: bool | Unset = UNSET
    sha256: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        ticket = self.ticket

        filename: None | str | Unset
        if isinstance(self.filename, Unset):
            filename = UNSET
        else:
            filename = self.filename

        public = self.public

        sha256: None | str | Unset
        if isinstance(self.sha256, Unset):
            sha256 = UNSET
        else:
            sha256 = self.sha256


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "ticket": ticket,
        })
        if filename is not UNSET:
            field_dict["filename"] = filename
        if public is not UNSET:
            field_dict["public"] = public
        if sha256 is not UNSET:
            field_dict["sha256"] = sha256

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ticket = d.pop("ticket")

        def _parse_filename(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        filename = _parse_filename(d.pop("filename", UNSET))


        public = d.pop("public", UNSET)

        def _parse_sha256(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sha256 = _parse_sha256(d.pop("sha256", UNSET))


        image_local_import_request = cls(
            ticket=ticket,
            filename=filename,
            public=public,
            sha256=sha256,
        )

        return image_local_import_request

