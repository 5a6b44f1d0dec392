from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.network_type_1_mode import NetworkType1Mode






T = TypeVar("T", bound="NetworkType1")



@_attrs_define
class NetworkType1:
    """ A tap device attached to an existing Linux bridge on the node.

        Attributes:
            bridge (str):
            mode (NetworkType1Mode):
     """

    bridge: str
    mode: NetworkType1Mode
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        bridge = self.bridge

        mode = self.mode.value


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "bridge": bridge,
            "mode": mode,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        bridge = d.pop("bridge")

        mode = NetworkType1Mode(d.pop("mode"))




        network_type_1 = cls(
            bridge=bridge,
            mode=mode,
        )


        network_type_1.additional_properties = d
        return network_type_1

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
