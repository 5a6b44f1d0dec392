from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.image_kind_type_0_kind import ImageKindType0Kind






T = TypeVar("T", bound="ImageKindType0")



@_attrs_define
class ImageKindType0:
    """ Direct kernel boot: kernel + initrd + command line.

        Attributes:
            cmdline (str):
            kind (ImageKindType0Kind):
     """

    cmdline: str
    kind: ImageKindType0Kind
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        cmdline = self.cmdline

        kind = self.kind.value


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "cmdline": cmdline,
            "kind": kind,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        cmdline = d.pop("cmdline")

        kind = ImageKindType0Kind(d.pop("kind"))




        image_kind_type_0 = cls(
            cmdline=cmdline,
            kind=kind,
        )


        image_kind_type_0.additional_properties = d
        return image_kind_type_0

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
