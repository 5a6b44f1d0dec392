from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.backup_repo import BackupRepo





T = TypeVar("T", bound="RestoreSource")



@_attrs_define
class RestoreSource:
    """ Where a VM's disk is restored from (the agent fills the disk from the repository).

        Attributes:
            backup (str):
            generation (int): The desired-state generation that asked for the restore (applied once).
            repo (BackupRepo): A backup repository known to the cluster.
     """

    backup: str
    generation: int
    repo: BackupRepo
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.backup_repo import BackupRepo # noqa: PLC0415
        backup = self.backup

        generation = self.generation

        repo = self.repo.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "backup": backup,
            "generation": generation,
            "repo": repo,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.backup_repo import BackupRepo # noqa: PLC0415
        d = dict(src_dict)
        backup = d.pop("backup")

        generation = d.pop("generation")

        repo = BackupRepo.from_dict(d.pop("repo"))




        restore_source = cls(
            backup=backup,
            generation=generation,
            repo=repo,
        )


        restore_source.additional_properties = d
        return restore_source

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
