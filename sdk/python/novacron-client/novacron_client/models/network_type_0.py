from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.network_type_0_mode import NetworkType0Mode
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.port_forward import PortForward





T = TypeVar("T", bound="NetworkType0")



@_attrs_define
class NetworkType0:
    """ User-mode NAT, optionally with host port forwards.

        Attributes:
            mode (NetworkType0Mode):
            forwards (list[PortForward] | Unset):
     """

    mode: NetworkType0Mode
    forwards: list[PortForward] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.port_forward import PortForward # noqa: PLC0415
        mode = self.mode.value

        forwards: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.forwards, Unset):
            forwards = []
            for forwards_item_data in self.forwards:
                forwards_item = forwards_item_data.to_dict()
                forwards.append(forwards_item)




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "mode": mode,
        })
        if forwards is not UNSET:
            field_dict["forwards"] = forwards

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.port_forward import PortForward # noqa: PLC0415
        d = dict(src_dict)
        mode = NetworkType0Mode(d.pop("mode"))




        _forwards = d.pop("forwards", UNSET)
        forwards: list[PortForward] | Unset = UNSET
        if _forwards is not UNSET:
            forwards = []
            for forwards_item_data in _forwards:
                forwards_item = PortForward.from_dict(forwards_item_data)



                forwards.append(forwards_item)


        network_type_0 = cls(
            mode=mode,
            forwards=forwards,
        )


        network_type_0.additional_properties = d
        return network_type_0

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
