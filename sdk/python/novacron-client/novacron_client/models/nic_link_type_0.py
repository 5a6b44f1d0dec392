from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.nic_link_type_0_kind import NicLinkType0Kind
from typing import cast






T = TypeVar("T", bound="NicLinkType0")



@_attrs_define
class NicLinkType0:
    """ An overlay network of the VM's project, with an address from its IPAM.

        Attributes:
            ips (list[str]):
            kind (NicLinkType0Kind):
            network (str):
            vni (int):
     """

    ips: list[str]
    kind: NicLinkType0Kind
    network: str
    vni: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        ips = self.ips



        kind = self.kind.value

        network = self.network

        vni = self.vni


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "ips": ips,
            "kind": kind,
            "network": network,
            "vni": vni,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ips = cast(list[str], d.pop("ips"))


        kind = NicLinkType0Kind(d.pop("kind"))




        network = d.pop("network")

        vni = d.pop("vni")

        nic_link_type_0 = cls(
            ips=ips,
            kind=kind,
            network=network,
            vni=vni,
        )


        nic_link_type_0.additional_properties = d
        return nic_link_type_0

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
