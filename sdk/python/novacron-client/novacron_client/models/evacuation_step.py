from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="EvacuationStep")



@_attrs_define
class EvacuationStep:
    """ One VM of an evacuation plan, in the order it moves.

        Attributes:
            destination (str):
            reason (str): Why it is at this position (e.g. `stopped: moves first, no memory to copy`).
            vm (str):
     """

    destination: str
    reason: str
    vm: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        destination = self.destination

        reason = self.reason

        vm = self.vm


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "destination": destination,
            "reason": reason,
            "vm": vm,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        destination = d.pop("destination")

        reason = d.pop("reason")

        vm = d.pop("vm")

        evacuation_step = cls(
            destination=destination,
            reason=reason,
            vm=vm,
        )


        evacuation_step.additional_properties = d
        return evacuation_step

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
