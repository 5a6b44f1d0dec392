from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="CloneSource")



@_attrs_define
class CloneSource:
    """ Where a new VM's disk comes from when `vm clone` made it: VM `name` of `project`, on the
    same node, copied whole, or (`linked`) shared as the frozen backing file of both.

        Attributes:
            name (str):
            project (str):
            linked (bool | Unset):
     """

    name: str
    project: str
    linked: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        project = self.project

        linked = self.linked


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "name": name,
            "project": project,
        })
        if linked is not UNSET:
            field_dict["linked"] = linked

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        project = d.pop("project")

        linked = d.pop("linked", UNSET)

        clone_source = cls(
            name=name,
            project=project,
            linked=linked,
        )


        clone_source.additional_properties = d
        return clone_source

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
