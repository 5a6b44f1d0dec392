from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.nic_counters import NicCounters





T = TypeVar("T", bound="VmUsage")



@_attrs_define
class VmUsage:
    """ What one VM's QEMU has used since it started.

        Attributes:
            balloon_actual_bytes (int | None | Unset): The balloon's current size of guest memory; absent when the VM has no
                balloon device.
            cpu_seconds (float | Unset): CPU time of the QEMU process, all threads (vCPUs and QEMU's own work), in seconds.
                Default: 0.0.
            disk_read_bytes (int | Unset): Summed over the VM's block devices (QMP `query-blockstats`). Default: 0.
            disk_read_ops (int | Unset):  Default: 0.
            disk_write_bytes (int | Unset):  Default: 0.
            disk_write_ops (int | Unset):  Default: 0.
            nic (NicCounters | None | Unset):
            rss_bytes (int | Unset): Resident memory of the QEMU process. Default: 0.
     """

    balloon_actual_bytes: int | None | Unset = UNSET
    cpu_seconds: float | Unset = 0.0
    disk_read_bytes: int | Unset = 0
    disk_read_ops: int | Unset = 0
    disk_write_bytes: int | Unset = 0
    disk_write_ops: int | Unset = 0
    nic: NicCounters | None | Unset = UNSET
    rss_bytes: int | Unset = 0
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.nic_counters import NicCounters # noqa: PLC0415
        balloon_actual_bytes: int | None | Unset
        if isinstance(self.balloon_actual_bytes, Unset):
            balloon_actual_bytes = UNSET
        else:
            balloon_actual_bytes = self.balloon_actual_bytes

        cpu_seconds = self.cpu_seconds

        disk_read_bytes = self.disk_read_bytes

        disk_read_ops = self.disk_read_ops

        disk_write_bytes = self.disk_write_bytes

        disk_write_ops = self.disk_write_ops

        nic: dict[str, Any] | None | Unset
        if isinstance(self.nic, Unset):
            nic = UNSET
        elif isinstance(self.nic, NicCounters):
            nic = self.nic.to_dict()
        else:
            nic = self.nic

        rss_bytes = self.rss_bytes


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if balloon_actual_bytes is not UNSET:
            field_dict["balloon_actual_bytes"] = balloon_actual_bytes
        if cpu_seconds is not UNSET:
            field_dict["cpu_seconds"] = cpu_seconds
        if disk_read_bytes is not UNSET:
            field_dict["disk_read_bytes"] = disk_read_bytes
        if disk_read_ops is not UNSET:
            field_dict["disk_read_ops"] = disk_read_ops
        if disk_write_bytes is not UNSET:
            field_dict["disk_write_bytes"] = disk_write_bytes
        if disk_write_ops is not UNSET:
            field_dict["disk_write_ops"] = disk_write_ops
        if nic is not UNSET:
            field_dict["nic"] = nic
        if rss_bytes is not UNSET:
            field_dict["rss_bytes"] = rss_bytes

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.nic_counters import NicCounters # noqa: PLC0415
        d = dict(src_dict)
        def _parse_balloon_actual_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        balloon_actual_bytes = _parse_balloon_actual_bytes(d.pop("balloon_actual_bytes", UNSET))


        cpu_seconds = d.pop("cpu_seconds", UNSET)

        disk_read_bytes = d.pop("disk_read_bytes", UNSET)

        disk_read_ops = d.pop("disk_read_ops", UNSET)

        disk_write_bytes = d.pop("disk_write_bytes", UNSET)

        disk_write_ops = d.pop("disk_write_ops", UNSET)

        def _parse_nic(data: object) -> NicCounters | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                nic_type_0 = NicCounters.from_dict(data)



                return nic_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(NicCounters | None | Unset, data)

        nic = _parse_nic(d.pop("nic", UNSET))


        rss_bytes = d.pop("rss_bytes", UNSET)

        vm_usage = cls(
            balloon_actual_bytes=balloon_actual_bytes,
            cpu_seconds=cpu_seconds,
            disk_read_bytes=disk_read_bytes,
            disk_read_ops=disk_read_ops,
            disk_write_bytes=disk_write_bytes,
            disk_write_ops=disk_write_ops,
            nic=nic,
            rss_bytes=rss_bytes,
        )


        vm_usage.additional_properties = d
        return vm_usage

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
