from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.role import Role
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.who_am_i_projects import WhoAmIProjects





T = TypeVar("T", bound="WhoAmI")



@_attrs_define
class WhoAmI:
    """ Answer of `GET /api/v1/whoami`: who the caller's token is, and its roles.

        Attributes:
            who (str): For messages: `admin token`, `user alice`, `token tk-...`.
            cluster_role (None | Role | Unset):
            home_project (None | str | Unset): The project a project-scoped token acts in unless a request names another.
            projects (WhoAmIProjects | Unset): Its role in each project it is bound to (a cluster role adds the same rank
                everywhere).
            user (None | str | Unset): The user the token belongs to, if any.
     """

    who: str
    cluster_role: None | Role | Unset = UNSET
    home_project: None | str | Unset = UNSET
    projects: WhoAmIProjects | Unset = UNSET
    user: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.who_am_i_projects import WhoAmIProjects # noqa: PLC0415
        who = self.who

        cluster_role: None | str | Unset
        if isinstance(self.cluster_role, Unset):
            cluster_role = UNSET
        elif isinstance(self.cluster_role, Role):
            cluster_role = self.cluster_role.value
        else:
            cluster_role = self.cluster_role

        home_project: None | str | Unset
        if isinstance(self.home_project, Unset):
            home_project = UNSET
        else:
            home_project = self.home_project

        projects: dict[str, Any] | Unset = UNSET
        if not isinstance(self.projects, Unset):
            projects = self.projects.to_dict()

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "who": who,
        })
        if cluster_role is not UNSET:
            field_dict["cluster_role"] = cluster_role
        if home_project is not UNSET:
            field_dict["home_project"] = home_project
        if projects is not UNSET:
            field_dict["projects"] = projects
        if user is not UNSET:
            field_dict["user"] = user

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.who_am_i_projects import WhoAmIProjects # noqa: PLC0415
        d = dict(src_dict)
        who = d.pop("who")

        def _parse_cluster_role(data: object) -> None | Role | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                cluster_role_type_0 = Role(data)



                return cluster_role_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Role | Unset, data)

        cluster_role = _parse_cluster_role(d.pop("cluster_role", UNSET))


        def _parse_home_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        home_project = _parse_home_project(d.pop("home_project", UNSET))


        _projects = d.pop("projects", UNSET)
        projects: WhoAmIProjects | Unset
        if isinstance(_projects,  Unset):
            projects = UNSET
        else:
            projects = WhoAmIProjects.from_dict(_projects)




        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))


        who_am_i = cls(
            who=who,
            cluster_role=cluster_role,
            home_project=home_project,
            projects=projects,
            user=user,
        )


        who_am_i.additional_properties = d
        return who_am_i

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
