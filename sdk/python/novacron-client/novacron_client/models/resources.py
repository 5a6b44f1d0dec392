from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="Resources")



@_attrs_define
class Resources:
    """ Resources of a node.

        Attributes:
            cpus (int):
            disk_bytes (int):
            memory_bytes (int):
     """

    cpus: int
    disk_bytes: int
    memory_bytes: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        disk_bytes = self.disk_bytes

        memory_bytes = self.memory_bytes


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "cpus": cpus,
            "disk_bytes": disk_bytes,
            "memory_bytes": memory_bytes,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cpus = d.pop("cpus")

        disk_bytes = d.pop("disk_bytes")

        memory_bytes = d.pop("memory_bytes")

        resources = cls(
            cpus=cpus,
            disk_bytes=disk_bytes,
            memory_bytes=memory_bytes,
        )


        resources.additional_properties = d
        return resources

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
