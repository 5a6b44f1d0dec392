from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="OverlayNetwork")



@_attrs_define
class OverlayNetwork:
    """ An overlay network: what `network show` prints and what the store keeps.

        Attributes:
            created_at (int):
            dhcp (bool):
            dns (bool):
            gateway (str):
            mtu (int):
            name (str):
            nat (bool):
            project (str):
            subnet (str): CIDR, e.g. `10.10.0.0/24`.
            vni (int): The VXLAN network identifier, unique in the cluster.
     """

    created_at: int
    dhcp: bool
    dns: bool
    gateway: str
    mtu: int
    name: str
    nat: bool
    project: str
    subnet: str
    vni: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        dhcp = self.dhcp

        dns = self.dns

        gateway = self.gateway

        mtu = self.mtu

        name = self.name

        nat = self.nat

        project = self.project

        subnet = self.subnet

        vni = self.vni


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "dhcp": dhcp,
            "dns": dns,
            "gateway": gateway,
            "mtu": mtu,
            "name": name,
            "nat": nat,
            "project": project,
            "subnet": subnet,
            "vni": vni,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        dhcp = d.pop("dhcp")

        dns = d.pop("dns")

        gateway = d.pop("gateway")

        mtu = d.pop("mtu")

        name = d.pop("name")

        nat = d.pop("nat")

        project = d.pop("project")

        subnet = d.pop("subnet")

        vni = d.pop("vni")

        overlay_network = cls(
            created_at=created_at,
            dhcp=dhcp,
            dns=dns,
            gateway=gateway,
            mtu=mtu,
            name=name,
            nat=nat,
            project=project,
            subnet=subnet,
            vni=vni,
        )


        overlay_network.additional_properties = d
        return overlay_network

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
