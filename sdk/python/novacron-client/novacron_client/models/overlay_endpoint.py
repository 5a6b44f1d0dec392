from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="OverlayEndpoint")



@_attrs_define
class OverlayEndpoint:
    """ A VM NIC on a network.

        Attributes:
            ips (list[str]):
            mac (str):
            vm (str):
            bandwidth_bps (int | None | Unset): The VM's limit in bits per second, each direction (local endpoints only):
                none is
                no limit.
            security_groups (list[str] | Unset): The VM's security groups (local endpoints only): none leaves the NIC
                unfiltered.
     """

    ips: list[str]
    mac: str
    vm: str
    bandwidth_bps: int | None | Unset = UNSET
    security_groups: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        ips = self.ips



        mac = self.mac

        vm = self.vm

        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        security_groups: list[str] | Unset = UNSET
        if not isinstance(self.security_groups, Unset):
            security_groups = self.security_groups




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "ips": ips,
            "mac": mac,
            "vm": vm,
        })
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if security_groups is not UNSET:
            field_dict["security_groups"] = security_groups

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ips = cast(list[str], d.pop("ips"))


        mac = d.pop("mac")

        vm = d.pop("vm")

        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        security_groups = cast(list[str], d.pop("security_groups", UNSET))


        overlay_endpoint = cls(
            ips=ips,
            mac=mac,
            vm=vm,
            bandwidth_bps=bandwidth_bps,
            security_groups=security_groups,
        )


        overlay_endpoint.additional_properties = d
        return overlay_endpoint

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
