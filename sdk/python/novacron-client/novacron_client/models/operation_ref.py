from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.operation import Operation





T = TypeVar("T", bound="OperationRef")



@_attrs_define
class OperationRef:
    """ Answer of calls that start a long operation.

        Attributes:
            operation (Operation): A long operation (start, stop, create, later migrate) the CLI can wait on.
     """

    operation: Operation
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.operation import Operation # noqa: PLC0415
        operation = self.operation.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "operation": operation,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.operation import Operation # noqa: PLC0415
        d = dict(src_dict)
        operation = Operation.from_dict(d.pop("operation"))




        operation_ref = cls(
            operation=operation,
        )


        operation_ref.additional_properties = d
        return operation_ref

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
