from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="BuildTinyRequest")



@_attrs_define
class BuildTinyRequest:
    """ Body of `POST /api/v1/images/build-tiny`.

        Attributes:
            name (str):
            public (bool | Unset): Make it a public image, which every project can use (cluster admins only).
     """

    name: str
    public: bool | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        public = self.public


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
        })
        if public is not UNSET:
            field_dict["public"] = public

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        public = d.pop("public", UNSET)

        build_tiny_request = cls(
            name=name,
            public=public,
        )

        return build_tiny_request

