from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ProjectLimits")



@_attrs_define
class ProjectLimits:
    """ What a project may hold at most; `None` is unlimited.

        Attributes:
            max_backup_storage_bytes (int | None | Unset):
            max_cpus (int | None | Unset):
            max_disk_bytes (int | None | Unset):
            max_memory_bytes (int | None | Unset):
            max_networks (int | None | Unset):
            max_vms (int | None | Unset):
     """

    max_backup_storage_bytes: int | None | Unset = UNSET
    max_cpus: int | None | Unset = UNSET
    max_disk_bytes: int | None | Unset = UNSET
    max_memory_bytes: int | None | Unset = UNSET
    max_networks: int | None | Unset = UNSET
    max_vms: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        max_backup_storage_bytes: int | None | Unset
        if isinstance(self.max_backup_storage_bytes, Unset):
            max_backup_storage_bytes = UNSET
        else:
            max_backup_storage_bytes = self.max_backup_storage_bytes

        max_cpus: int | None | Unset
        if isinstance(self.max_cpus, Unset):
            max_cpus = UNSET
        else:
            max_cpus = self.max_cpus

        max_disk_bytes: int | None | Unset
        if isinstance(self.max_disk_bytes, Unset):
            max_disk_bytes = UNSET
        else:
            max_disk_bytes = self.max_disk_bytes

        max_memory_bytes: int | None | Unset
        if isinstance(self.max_memory_bytes, Unset):
            max_memory_bytes = UNSET
        else:
            max_memory_bytes = self.max_memory_bytes

        max_networks: int | None | Unset
        if isinstance(self.max_networks, Unset):
            max_networks = UNSET
        else:
            max_networks = self.max_networks

        max_vms: int | None | Unset
        if isinstance(self.max_vms, Unset):
            max_vms = UNSET
        else:
            max_vms = self.max_vms


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if max_backup_storage_bytes is not UNSET:
            field_dict["max_backup_storage_bytes"] = max_backup_storage_bytes
        if max_cpus is not UNSET:
            field_dict["max_cpus"] = max_cpus
        if max_disk_bytes is not UNSET:
            field_dict["max_disk_bytes"] = max_disk_bytes
        if max_memory_bytes is not UNSET:
            field_dict["max_memory_bytes"] = max_memory_bytes
        if max_networks is not UNSET:
            field_dict["max_networks"] = max_networks
        if max_vms is not UNSET:
            field_dict["max_vms"] = max_vms

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_max_backup_storage_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_backup_storage_bytes = _parse_max_backup_storage_bytes(d.pop("max_backup_storage_bytes", UNSET))


        def _parse_max_cpus(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_cpus = _parse_max_cpus(d.pop("max_cpus", UNSET))


        def _parse_max_disk_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_disk_bytes = _parse_max_disk_bytes(d.pop("max_disk_bytes", UNSET))


        def _parse_max_memory_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_memory_bytes = _parse_max_memory_bytes(d.pop("max_memory_bytes", UNSET))


        def _parse_max_networks(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_networks = _parse_max_networks(d.pop("max_networks", UNSET))


        def _parse_max_vms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_vms = _parse_max_vms(d.pop("max_vms", UNSET))


        project_limits = cls(
            max_backup_storage_bytes=max_backup_storage_bytes,
            max_cpus=max_cpus,
            max_disk_bytes=max_disk_bytes,
            max_memory_bytes=max_memory_bytes,
            max_networks=max_networks,
            max_vms=max_vms,
        )


        project_limits.additional_properties = d
        return project_limits

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
