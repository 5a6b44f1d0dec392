from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.repo_location_type_0 import RepoLocationType0
  from ..models.repo_location_type_1 import RepoLocationType1





T = TypeVar("T", bound="BackupRepo")



@_attrs_define
class BackupRepo:
    """ A backup repository known to the cluster.

        Attributes:
            created_at (int):
            location (RepoLocationType0 | RepoLocationType1): Where a repository lives. Every node that backs up or restores
                must reach it (a local
                directory on a single machine, a shared directory, or S3-compatible storage).
            name (str):
            key_file (None | str | Unset): Key file for client-side encryption (same path on every node), if encrypted.
     """

    created_at: int
    location: RepoLocationType0 | RepoLocationType1
    name: str
    key_file: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.repo_location_type_0 import RepoLocationType0 # noqa: PLC0415
        from ..models.repo_location_type_1 import RepoLocationType1 # noqa: PLC0415
        created_at = self.created_at

        location: dict[str, Any]
        if isinstance(self.location, RepoLocationType0):
            location = self.location.to_dict()
        else:
            location = self.location.to_dict()


        name = self.name

        key_file: None | str | Unset
        if isinstance(self.key_file, Unset):
            key_file = UNSET
        else:
            key_file = self.key_file


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "location": location,
            "name": name,
        })
        if key_file is not UNSET:
            field_dict["key_file"] = key_file

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.repo_location_type_0 import RepoLocationType0 # noqa: PLC0415
        from ..models.repo_location_type_1 import RepoLocationType1 # noqa: PLC0415
        d = dict(src_dict)
        created_at = d.pop("created_at")

        def _parse_location(data: object) -> RepoLocationType0 | RepoLocationType1:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_repo_location_type_0 = RepoLocationType0.from_dict(data)



                return componentsschemas_repo_location_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_repo_location_type_1 = RepoLocationType1.from_dict(data)



            return componentsschemas_repo_location_type_1

        location = _parse_location(d.pop("location"))


        name = d.pop("name")

        def _parse_key_file(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        key_file = _parse_key_file(d.pop("key_file", UNSET))


        backup_repo = cls(
            created_at=created_at,
            location=location,
            name=name,
            key_file=key_file,
        )


        backup_repo.additional_properties = d
        return backup_repo

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
