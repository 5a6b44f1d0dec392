from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast






T = TypeVar("T", bound="Nic")



@_attrs_define
class Nic:
    """ A VM's NIC on an overlay network: what `vm show` prints, what the store keeps.

        Attributes:
            ips (list[str]): Addresses the control plane allocated to this NIC.
            mac (str):
            network (str):
            vni (int): The network's VNI (its bridge on the node is `ncbr<vni>`).
     """

    ips: list[str]
    mac: str
    network: str
    vni: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        ips = self.ips



        mac = self.mac

        network = self.network

        vni = self.vni


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "ips": ips,
            "mac": mac,
            "network": network,
            "vni": vni,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ips = cast(list[str], d.pop("ips"))


        mac = d.pop("mac")

        network = d.pop("network")

        vni = d.pop("vni")

        nic = cls(
            ips=ips,
            mac=mac,
            network=network,
            vni=vni,
        )


        nic.additional_properties = d
        return nic

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
