from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="BackupCreateRequest")



@_attrs_define
class BackupCreateRequest:
    """ Body of `POST /api/v1/vms/{name}/backup`.

        Attributes:
            repo (str):
     """

    repo: str





    def to_dict(self) -> dict[str, Any]:
        repo = self.repo


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "repo": repo,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        repo = d.pop("repo")

        backup_create_request = cls(
            repo=repo,
        )

        return backup_create_request

