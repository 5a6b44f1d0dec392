from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="BackupRepoAddRequest")



@_attrs_define
class BackupRepoAddRequest:
    """ Body of `POST /api/v1/backup/repos`. An existing repository at the location is adopted
    (disaster recovery: the repository describes itself).

        Attributes:
            name (str):
            encrypt (bool | Unset):
            key_file (None | str | Unset): With `encrypt`: the key file (created with a new random key when missing).
            path (None | str | Unset):
            s3 (None | str | Unset):
     """

    name: str
    encrypt: bool | Unset = UNSET
    key_file: None | str | Unset = UNSET
    path: None | str | Unset = UNSET
    s3: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        encrypt = self.encrypt

        key_file: None | str | Unset
        if isinstance(self.key_file, Unset):
            key_file = UNSET
        else:
            key_file = self.key_file

        path: None | str | Unset
        if isinstance(self.path, Unset):
            path = UNSET
        else:
            path = self.path

        s3: None | str | Unset
        if isinstance(self.s3, Unset):
            s3 = UNSET
        else:
            s3 = self.s3


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
        })
        if encrypt is not UNSET:
            field_dict["encrypt"] = encrypt
        if key_file is not UNSET:
            field_dict["key_file"] = key_file
        if path is not UNSET:
            field_dict["path"] = path
        if s3 is not UNSET:
            field_dict["s3"] = s3

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        encrypt = d.pop("encrypt", UNSET)

        def _parse_key_file(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        key_file = _parse_key_file(d.pop("key_file", UNSET))


        def _parse_path(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        path = _parse_path(d.pop("path", UNSET))


        def _parse_s3(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        s3 = _parse_s3(d.pop("s3", UNSET))


        backup_repo_add_request = cls(
            name=name,
            encrypt=encrypt,
            key_file=key_file,
            path=path,
            s3=s3,
        )

        return backup_repo_add_request

