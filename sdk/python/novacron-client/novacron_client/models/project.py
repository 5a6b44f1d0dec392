from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.project_limits import ProjectLimits





T = TypeVar("T", bound="Project")



@_attrs_define
class Project:
    """ A project.

        Attributes:
            name (str):
            created_at (int | Unset):
            deleting (bool | Unset): A `project delete` is under way: creates in the project are refused until it ends.
            description (str | Unset):
            limits (ProjectLimits | Unset): What a project may hold at most; `None` is unlimited.
     """

    name: str
    created_at: int | Unset = UNSET
    deleting: bool | Unset = UNSET
    description: str | Unset = UNSET
    limits: ProjectLimits | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        name = self.name

        created_at = self.created_at

        deleting = self.deleting

        description = self.description

        limits: dict[str, Any] | Unset = UNSET
        if not isinstance(self.limits, Unset):
            limits = self.limits.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "name": name,
        })
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if deleting is not UNSET:
            field_dict["deleting"] = deleting
        if description is not UNSET:
            field_dict["description"] = description
        if limits is not UNSET:
            field_dict["limits"] = limits

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        d = dict(src_dict)
        name = d.pop("name")

        created_at = d.pop("created_at", UNSET)

        deleting = d.pop("deleting", UNSET)

        description = d.pop("description", UNSET)

        _limits = d.pop("limits", UNSET)
        limits: ProjectLimits | Unset
        if isinstance(_limits,  Unset):
            limits = UNSET
        else:
            limits = ProjectLimits.from_dict(_limits)




        project = cls(
            name=name,
            created_at=created_at,
            deleting=deleting,
            description=description,
            limits=limits,
        )


        project.additional_properties = d
        return project

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
