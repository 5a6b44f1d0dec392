from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="ProjectUsage")



@_attrs_define
class ProjectUsage:
    """ What a project holds (the counted resources of [`ProjectLimits`]).

        Attributes:
            backup_storage_bytes (int):
            cpus (int):
            disk_bytes (int):
            memory_bytes (int):
            networks (int):
            vms (int):
     """

    backup_storage_bytes: int
    cpus: int
    disk_bytes: int
    memory_bytes: int
    networks: int
    vms: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        backup_storage_bytes = self.backup_storage_bytes

        cpus = self.cpus

        disk_bytes = self.disk_bytes

        memory_bytes = self.memory_bytes

        networks = self.networks

        vms = self.vms


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "backup_storage_bytes": backup_storage_bytes,
            "cpus": cpus,
            "disk_bytes": disk_bytes,
            "memory_bytes": memory_bytes,
            "networks": networks,
            "vms": vms,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        backup_storage_bytes = d.pop("backup_storage_bytes")

        cpus = d.pop("cpus")

        disk_bytes = d.pop("disk_bytes")

        memory_bytes = d.pop("memory_bytes")

        networks = d.pop("networks")

        vms = d.pop("vms")

        project_usage = cls(
            backup_storage_bytes=backup_storage_bytes,
            cpus=cpus,
            disk_bytes=disk_bytes,
            memory_bytes=memory_bytes,
            networks=networks,
            vms=vms,
        )


        project_usage.additional_properties = d
        return project_usage

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
