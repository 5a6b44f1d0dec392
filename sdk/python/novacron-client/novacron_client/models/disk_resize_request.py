from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="DiskResizeRequest")



@_attrs_define
class DiskResizeRequest:
    """ Body of `POST /api/v1/vms/{name}/disks/{disk}/resize`.

        Attributes:
            size_bytes (int): The new size in bytes: larger than the disk is now, a multiple of 512.
     """

    size_bytes: int





    def to_dict(self) -> dict[str, Any]:
        size_bytes = self.size_bytes


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "size_bytes": size_bytes,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        size_bytes = d.pop("size_bytes")

        disk_resize_request = cls(
            size_bytes=size_bytes,
        )

        return disk_resize_request

