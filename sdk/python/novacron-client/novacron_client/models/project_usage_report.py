from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.project_limits import ProjectLimits
  from ..models.project_usage import ProjectUsage





T = TypeVar("T", bound="ProjectUsageReport")



@_attrs_define
class ProjectUsageReport:
    """ Answer of `GET /api/v1/projects/{project}/usage`.

        Attributes:
            limits (ProjectLimits): What a project may hold at most; `None` is unlimited.
            project (str):
            usage (ProjectUsage): What a project holds (the counted resources of [`ProjectLimits`]).
     """

    limits: ProjectLimits
    project: str
    usage: ProjectUsage
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        from ..models.project_usage import ProjectUsage # noqa: PLC0415
        limits = self.limits.to_dict()

        project = self.project

        usage = self.usage.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "limits": limits,
            "project": project,
            "usage": usage,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.project_limits import ProjectLimits # noqa: PLC0415
        from ..models.project_usage import ProjectUsage # noqa: PLC0415
        d = dict(src_dict)
        limits = ProjectLimits.from_dict(d.pop("limits"))




        project = d.pop("project")

        usage = ProjectUsage.from_dict(d.pop("usage"))




        project_usage_report = cls(
            limits=limits,
            project=project,
            usage=usage,
        )


        project_usage_report.additional_properties = d
        return project_usage_report

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
