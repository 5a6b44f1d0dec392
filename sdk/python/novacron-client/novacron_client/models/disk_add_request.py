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
    """ Body of `POST /api/v1/vms/{name}/disks`: a blank disk of `size_bytes`, or a copy of
    disk image `image` (grown to `size_bytes` if that is given and larger).

        Attributes:
            bus (None | str | Unset): `virtio` (the default).
            image (None | str | Unset): A disk image of the project to copy onto the new disk.
            size_bytes (int | None | Unset): The new disk's size in bytes (a multiple of 512); with `image`, at least its
                size.
     """

    bus: None | str | Unset = UNSET
    image: None | str | Unset = UNSET
    size_bytes: int | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        bus: None | str | Unset
        if isinstance(self.bus, Unset):
            bus = UNSET
        else:
            bus = self.bus

        image: None | str | Unset
        if isinstance(self.image, Unset):
            image = UNSET
        else:
            image = self.image

        size_bytes: int | None | Unset
        if isinstance(self.size_bytes, Unset):
            size_bytes = UNSET
        else:
            size_bytes = self.size_bytes


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if bus is not UNSET:
            field_dict["bus"] = bus
        if image is not UNSET:
            field_dict["image"] = image
        if size_bytes is not UNSET:
            field_dict["size_bytes"] = size_bytes

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_bus(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        bus = _parse_bus(d.pop("bus", UNSET))


        def _parse_image(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        image = _parse_image(d.pop("image", UNSET))


        def _parse_size_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        size_bytes = _parse_size_bytes(d.pop("size_bytes", UNSET))


        disk_add_request = cls(
            bus=bus,
            image=image,
            size_bytes=size_bytes,
        )

        return disk_add_request

