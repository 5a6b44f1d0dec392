from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="VmSnapshot")



@_attrs_define
class VmSnapshot:
    """ A snapshot of a VM's disk (and, with `memory`, of its running state), kept inside the
    VM's qcow2 disk (internal snapshot).

        Attributes:
            created_at (int):
            memory (bool): Holds the guest's memory and device state: reverting a running VM to it brings the
                guest back to that moment.
            name (str):
            vm_state_bytes (int | Unset): Bytes of saved memory and device state (0 for a disk-only snapshot).
     """

    created_at: int
    memory: bool
    name: str
    vm_state_bytes: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        memory = self.memory

        name = self.name

        vm_state_bytes = self.vm_state_bytes


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "memory": memory,
            "name": name,
        })
        if vm_state_bytes is not UNSET:
            field_dict["vm_state_bytes"] = vm_state_bytes

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        memory = d.pop("memory")

        name = d.pop("name")

        vm_state_bytes = d.pop("vm_state_bytes", UNSET)

        vm_snapshot = cls(
            created_at=created_at,
            memory=memory,
            name=name,
            vm_state_bytes=vm_state_bytes,
        )


        vm_snapshot.additional_properties = d
        return vm_snapshot

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
