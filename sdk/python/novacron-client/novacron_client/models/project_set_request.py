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





T = TypeVar("T", bound="ProjectSetRequest")



@_attrs_define
class ProjectSetRequest:
    """ Body of `PUT /api/v1/projects/{project}`: the fields given replace the current ones (the
    limits not given stay as they are).

        Attributes:
            description (None | str | Unset):
            limits (ProjectLimits | Unset): What a project may hold at most; `None` is unlimited.
     """

    description: None | str | Unset = UNSET
    limits: ProjectLimits | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        limits: dict[str, Any] | Unset = UNSET
        if not isinstance(self.limits, Unset):
            limits = self.limits.to_dict()


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if description is not UNSET:
            field_dict["description"] = description
        if limits is not UNSET:
            field_dict["limits"] = limits

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        d = dict(src_dict)
        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        _limits = d.pop("limits", UNSET)
        limits: ProjectLimits | Unset
        if isinstance(_limits,  Unset):
            limits = UNSET
        else:
            limits = ProjectLimits.from_dict(_limits)




        project_set_request = cls(
            description=description,
            limits=limits,
        )

        return project_set_request

