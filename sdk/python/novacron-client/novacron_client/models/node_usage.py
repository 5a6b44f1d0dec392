from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="NodeUsage")



@_attrs_define
class NodeUsage:
    """ A node's own figures.

        Attributes:
            cpu_busy_seconds (float | Unset): CPU time spent not idle, summed over all CPUs (counter, seconds; /proc/stat).
                Default: 0.0.
            cpus (int | Unset): Online CPUs. Default: 0.
            disk_free_bytes (int | Unset): Free space there for unprivileged use. Default: 0.
            disk_total_bytes (int | Unset): Size of the file system holding the agent's data directory. Default: 0.
            memory_available_bytes (int | Unset): Memory available for new work without swapping (`MemAvailable`). Default:
                0.
            memory_total_bytes (int | Unset):  Default: 0.
     """

    cpu_busy_seconds: float | Unset = 0.0
    cpus: int | Unset = 0
    disk_free_bytes: int | Unset = 0
    disk_total_bytes: int | Unset = 0
    memory_available_bytes: int | Unset = 0
    memory_total_bytes: int | Unset = 0
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        cpu_busy_seconds = self.cpu_busy_seconds

        cpus = self.cpus

        disk_free_bytes = self.disk_free_bytes

        disk_total_bytes = self.disk_total_bytes

        memory_available_bytes = self.memory_available_bytes

        memory_total_bytes = self.memory_total_bytes


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if cpu_busy_seconds is not UNSET:
            field_dict["cpu_busy_seconds"] = cpu_busy_seconds
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if disk_free_bytes is not UNSET:
            field_dict["disk_free_bytes"] = disk_free_bytes
        if disk_total_bytes is not UNSET:
            field_dict["disk_total_bytes"] = disk_total_bytes
        if memory_available_bytes is not UNSET:
            field_dict["memory_available_bytes"] = memory_available_bytes
        if memory_total_bytes is not UNSET:
            field_dict["memory_total_bytes"] = memory_total_bytes

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cpu_busy_seconds = d.pop("cpu_busy_seconds", UNSET)

        cpus = d.pop("cpus", UNSET)

        disk_free_bytes = d.pop("disk_free_bytes", UNSET)

        disk_total_bytes = d.pop("disk_total_bytes", UNSET)

        memory_available_bytes = d.pop("memory_available_bytes", UNSET)

        memory_total_bytes = d.pop("memory_total_bytes", UNSET)

        node_usage = cls(
            cpu_busy_seconds=cpu_busy_seconds,
            cpus=cpus,
            disk_free_bytes=disk_free_bytes,
            disk_total_bytes=disk_total_bytes,
            memory_available_bytes=memory_available_bytes,
            memory_total_bytes=memory_total_bytes,
        )


        node_usage.additional_properties = d
        return node_usage

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
