from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.nic_link_type_1_kind import NicLinkType1Kind






T = TypeVar("T", bound="NicLinkType1")



@_attrs_define
class NicLinkType1:
    """ A tap on an existing Linux bridge of the node.

        Attributes:
            bridge (str):
            kind (NicLinkType1Kind):
     """

    bridge: str
    kind: NicLinkType1Kind
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        bridge = self.bridge

        kind = self.kind.value


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "bridge": bridge,
            "kind": kind,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        bridge = d.pop("bridge")

        kind = NicLinkType1Kind(d.pop("kind"))




        nic_link_type_1 = cls(
            bridge=bridge,
            kind=kind,
        )


        nic_link_type_1.additional_properties = d
        return nic_link_type_1

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
