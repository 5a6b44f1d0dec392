from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="DiskAddRequest")



@_attrs_define
class DiskAddRequest:
    """ Body of `POST /api/v1/vms/{name}/disks`.

        Attributes:
            size_bytes (int): The new, blank disk's size in bytes (a multiple of 512).
            bus (None | str | Unset): `virtio` (the default).
     """

    size_bytes: int
    bus: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        size_bytes = self.size_bytes

        bus: None | str | Unset
        if isinstance(self.bus, Unset):
            bus = UNSET
        else:
            bus = self.bus


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "size_bytes": size_bytes,
        })
        if bus is not UNSET:
            field_dict["bus"] = bus

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        size_bytes = d.pop("size_bytes")

        def _parse_bus(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        bus = _parse_bus(d.pop("bus", UNSET))


        disk_add_request = cls(
            size_bytes=size_bytes,
            bus=bus,
        )

        return disk_add_request

