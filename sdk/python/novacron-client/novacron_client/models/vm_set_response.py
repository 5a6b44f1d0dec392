from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.operation import Operation
  from ..models.vm import Vm





T = TypeVar("T", bound="VmSetResponse")



@_attrs_define
class VmSetResponse:
    """ Answer of `POST /api/v1/vms/{name}/set`.

        Attributes:
            at_next_start (list[str]): What takes effect only when the VM next starts (e.g. `cpus`, `memory`).
            operation (Operation): A long operation (start, stop, create, later migrate) the CLI can wait on.
            vm (Vm): A virtual machine: what was asked for and what is observed.
     """

    at_next_start: list[str]
    operation: Operation
    vm: Vm
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.operation import Operation # noqa: PLC0415
        from ..models.vm import Vm # noqa: PLC0415
        at_next_start = self.at_next_start



        operation = self.operation.to_dict()

        vm = self.vm.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "at_next_start": at_next_start,
            "operation": operation,
            "vm": vm,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.operation import Operation # noqa: PLC0415
        from ..models.vm import Vm # noqa: PLC0415
        d = dict(src_dict)
        at_next_start = cast(list[str], d.pop("at_next_start"))


        operation = Operation.from_dict(d.pop("operation"))




        vm = Vm.from_dict(d.pop("vm"))




        vm_set_response = cls(
            at_next_start=at_next_start,
            operation=operation,
            vm=vm,
        )


        vm_set_response.additional_properties = d
        return vm_set_response

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
