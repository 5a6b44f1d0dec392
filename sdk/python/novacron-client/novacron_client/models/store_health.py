from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="StoreHealth")



@_attrs_define
class StoreHealth:
    """ 
        Attributes:
            backend (str):
            detail (str):
            healthy (bool):
            revision (int):
     """

    backend: str
    detail: str
    healthy: bool
    revision: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        backend = self.backend

        detail = self.detail

        healthy = self.healthy

        revision = self.revision


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "backend": backend,
            "detail": detail,
            "healthy": healthy,
            "revision": revision,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        backend = d.pop("backend")

        detail = d.pop("detail")

        healthy = d.pop("healthy")

        revision = d.pop("revision")

        store_health = cls(
            backend=backend,
            detail=detail,
            healthy=healthy,
            revision=revision,
        )


        store_health.additional_properties = d
        return store_health

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
