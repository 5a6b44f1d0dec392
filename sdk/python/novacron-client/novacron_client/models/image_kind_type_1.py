from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.disk_format import DiskFormat
from ..models.image_kind_type_1_kind import ImageKindType1Kind






T = TypeVar("T", bound="ImageKindType1")



@_attrs_define
class ImageKindType1:
    """ A bootable disk (cloud image), qcow2 or raw.

        Attributes:
            format_ (DiskFormat):
            kind (ImageKindType1Kind):
     """

    format_: DiskFormat
    kind: ImageKindType1Kind
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        format_ = self.format_.value

        kind = self.kind.value


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "format": format_,
            "kind": kind,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        format_ = DiskFormat(d.pop("format"))




        kind = ImageKindType1Kind(d.pop("kind"))




        image_kind_type_1 = cls(
            format_=format_,
            kind=kind,
        )


        image_kind_type_1.additional_properties = d
        return image_kind_type_1

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
