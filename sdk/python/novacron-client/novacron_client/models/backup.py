from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="Backup")



@_attrs_define
class Backup:
    """ One backup in a listing.

        Attributes:
            disks (list[str]):
            id (str):
            repo (str):
            created_unix_ms (int | None | Unset):
            error (None | str | Unset): Why the backup cannot be read, when it cannot.
            project (None | str | Unset): The VM's project (a backup written before backups recorded one belongs to the
                project its stored VM definition names, else `default`); `None` when the backup
                cannot be read.
            size_bytes (int | None | Unset):
            vm (None | str | Unset):
     """

    disks: list[str]
    id: str
    repo: str
    created_unix_ms: int | None | Unset = UNSET
    error: None | str | Unset = UNSET
    project: None | str | Unset = UNSET
    size_bytes: int | None | Unset = UNSET
    vm: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        disks = self.disks



        id = self.id

        repo = self.repo

        created_unix_ms: int | None | Unset
        if isinstance(self.created_unix_ms, Unset):
            created_unix_ms = UNSET
        else:
            created_unix_ms = self.created_unix_ms

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        project: None | str | Unset
        if isinstance(self.project, Unset):
            project = UNSET
        else:
            project = self.project

        size_bytes: int | None | Unset
        if isinstance(self.size_bytes, Unset):
            size_bytes = UNSET
        else:
            size_bytes = self.size_bytes

        vm: None | str | Unset
        if isinstance(self.vm, Unset):
            vm = UNSET
        else:
            vm = self.vm


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "disks": disks,
            "id": id,
            "repo": repo,
        })
        if created_unix_ms is not UNSET:
            field_dict["created_unix_ms"] = created_unix_ms
        if error is not UNSET:
            field_dict["error"] = error
        if project is not UNSET:
            field_dict["project"] = project
        if size_bytes is not UNSET:
            field_dict["size_bytes"] = size_bytes
        if vm is not UNSET:
            field_dict["vm"] = vm

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        disks = cast(list[str], d.pop("disks"))


        id = d.pop("id")

        repo = d.pop("repo")

        def _parse_created_unix_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        created_unix_ms = _parse_created_unix_ms(d.pop("created_unix_ms", UNSET))


        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))


        def _parse_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project = _parse_project(d.pop("project", UNSET))


        def _parse_size_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        size_bytes = _parse_size_bytes(d.pop("size_bytes", UNSET))


        def _parse_vm(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        vm = _parse_vm(d.pop("vm", UNSET))


        backup = cls(
            disks=disks,
            id=id,
            repo=repo,
            created_unix_ms=created_unix_ms,
            error=error,
            project=project,
            size_bytes=size_bytes,
            vm=vm,
        )


        backup.additional_properties = d
        return backup

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
