from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.storage_kind import StorageKind
from ..types import UNSET, Unset






T = TypeVar("T", bound="StoragePool")



@_attrs_define
class StoragePool:
    """ A place for VM disks that every node can reach.

        Attributes:
            name (str):
            path (str):
            type_ (StorageKind): Kinds of storage pool.
            created_at (int | Unset):
     """

    name: str
    path: str
    type_: StorageKind
    created_at: int | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        path = self.path

        type_ = self.type_.value

        created_at = self.created_at


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
            "path": path,
            "type": type_,
        })
        if created_at is not UNSET:
            field_dict["created_at"] = created_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        path = d.pop("path")

        type_ = StorageKind(d.pop("type"))




        created_at = d.pop("created_at", UNSET)

        storage_pool = cls(
            name=name,
            path=path,
            type_=type_,
            created_at=created_at,
        )

        return storage_pool

