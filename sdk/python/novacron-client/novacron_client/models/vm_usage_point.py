from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.vm_usage import VmUsage





T = TypeVar("T", bound="VmUsagePoint")



@_attrs_define
class VmUsagePoint:
    """ A VM's usage at one moment of the history.

        Attributes:
            at_ms (int): When the agent took the sample (Unix milliseconds).
            usage (VmUsage): What one VM's QEMU has used since it started.
     """

    at_ms: int
    usage: VmUsage
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.vm_usage import VmUsage # noqa: PLC0415
        at_ms = self.at_ms

        usage = self.usage.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "at_ms": at_ms,
            "usage": usage,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.vm_usage import VmUsage # noqa: PLC0415
        d = dict(src_dict)
        at_ms = d.pop("at_ms")

        usage = VmUsage.from_dict(d.pop("usage"))




        vm_usage_point = cls(
            at_ms=at_ms,
            usage=usage,
        )


        vm_usage_point.additional_properties = d
        return vm_usage_point

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
