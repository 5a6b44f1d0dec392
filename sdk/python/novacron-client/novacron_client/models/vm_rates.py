from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="VmRates")



@_attrs_define
class VmRates:
    """ Rates between two samples of one VM, per second.

        Attributes:
            cpu_percent (float): CPU use of the QEMU process; 100 is one host CPU fully busy.
            disk_read_bytes_per_second (float):
            disk_read_ops_per_second (float):
            disk_write_bytes_per_second (float):
            disk_write_ops_per_second (float):
            over_seconds (float): Length of the interval the rates are over.
            nic_rx_bytes_per_second (float | None | Unset):
            nic_tx_bytes_per_second (float | None | Unset):
     """

    cpu_percent: float
    disk_read_bytes_per_second: float
    disk_read_ops_per_second: float
    disk_write_bytes_per_second: float
    disk_write_ops_per_second: float
    over_seconds: float
    nic_rx_bytes_per_second: float | None | Unset = UNSET
    nic_tx_bytes_per_second: float | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        cpu_percent = self.cpu_percent

        disk_read_bytes_per_second = self.disk_read_bytes_per_second

        disk_read_ops_per_second = self.disk_read_ops_per_second

        disk_write_bytes_per_second = self.disk_write_bytes_per_second

        disk_write_ops_per_second = self.disk_write_ops_per_second

        over_seconds = self.over_seconds

        nic_rx_bytes_per_second: float | None | Unset
        if isinstance(self.nic_rx_bytes_per_second, Unset):
            nic_rx_bytes_per_second = UNSET
        else:
            nic_rx_bytes_per_second = self.nic_rx_bytes_per_second

        nic_tx_bytes_per_second: float | None | Unset
        if isinstance(self.nic_tx_bytes_per_second, Unset):
            nic_tx_bytes_per_second = UNSET
        else:
            nic_tx_bytes_per_second = self.nic_tx_bytes_per_second


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "cpu_percent": cpu_percent,
            "disk_read_bytes_per_second": disk_read_bytes_per_second,
            "disk_read_ops_per_second": disk_read_ops_per_second,
            "disk_write_bytes_per_second": disk_write_bytes_per_second,
            "disk_write_ops_per_second": disk_write_ops_per_second,
            "over_seconds": over_seconds,
        })
        if nic_rx_bytes_per_second is not UNSET:
            field_dict["nic_rx_bytes_per_second"] = nic_rx_bytes_per_second
        if nic_tx_bytes_per_second is not UNSET:
            field_dict["nic_tx_bytes_per_second"] = nic_tx_bytes_per_second

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cpu_percent = d.pop("cpu_percent")

        disk_read_bytes_per_second = d.pop("disk_read_bytes_per_second")

        disk_read_ops_per_second = d.pop("disk_read_ops_per_second")

        disk_write_bytes_per_second = d.pop("disk_write_bytes_per_second")

        disk_write_ops_per_second = d.pop("disk_write_ops_per_second")

        over_seconds = d.pop("over_seconds")

        def _parse_nic_rx_bytes_per_second(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        nic_rx_bytes_per_second = _parse_nic_rx_bytes_per_second(d.pop("nic_rx_bytes_per_second", UNSET))


        def _parse_nic_tx_bytes_per_second(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        nic_tx_bytes_per_second = _parse_nic_tx_bytes_per_second(d.pop("nic_tx_bytes_per_second", UNSET))


        vm_rates = cls(
            cpu_percent=cpu_percent,
            disk_read_bytes_per_second=disk_read_bytes_per_second,
            disk_read_ops_per_second=disk_read_ops_per_second,
            disk_write_bytes_per_second=disk_write_bytes_per_second,
            disk_write_ops_per_second=disk_write_ops_per_second,
            over_seconds=over_seconds,
            nic_rx_bytes_per_second=nic_rx_bytes_per_second,
            nic_tx_bytes_per_second=nic_tx_bytes_per_second,
        )


        vm_rates.additional_properties = d
        return vm_rates

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
