from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="GuestInterface")



@_attrs_define
class GuestInterface:
    """ A network interface as the guest's qemu-guest-agent reports it.

        Attributes:
            name (str): The guest's name for it, e.g. `eth0`.
            ips (list[str] | Unset): Addresses with their prefix length (`10.0.2.15/24`), IPv4 first; link-local IPv6
                addresses are left out.
            mac (None | str | Unset):
     """

    name: str
    ips: list[str] | Unset = UNSET
    mac: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        ips: list[str] | Unset = UNSET
        if not isinstance(self.ips, Unset):
            ips = self.ips



        mac: None | str | Unset
        if isinstance(self.mac, Unset):
            mac = UNSET
        else:
            mac = self.mac


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "name": name,
        })
        if ips is not UNSET:
            field_dict["ips"] = ips
        if mac is not UNSET:
            field_dict["mac"] = mac

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        ips = cast(list[str], d.pop("ips", UNSET))


        def _parse_mac(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        mac = _parse_mac(d.pop("mac", UNSET))


        guest_interface = cls(
            name=name,
            ips=ips,
            mac=mac,
        )


        guest_interface.additional_properties = d
        return guest_interface

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
