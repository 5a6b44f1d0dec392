from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.vm_state import VmState
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.guest_interface import GuestInterface





T = TypeVar("T", bound="VmStatusReport")



@_attrs_define
class VmStatusReport:
    """ Body of `PUT /api/v1/agent/vms/{project}/{name}/status`.

        Attributes:
            observed_generation (int): The generation of desired state this report answers.
            state (VmState): What a VM is doing, as last observed (or being changed to).
            accel_in_use (None | str | Unset):
            deleted (bool | Unset): Files and process are gone after a delete.
            error (None | str | Unset): Acting on `observed_generation` failed with this error.
            guest_initiated_stop (bool | Unset): The guest powered itself off (the VM should stay off).
            guest_interfaces (list[GuestInterface] | Unset): The guest's interfaces and addresses, from its qemu-guest-
                agent, while it runs.
            pid (int | None | Unset):
            reason (None | str | Unset):
     """

    observed_generation: int
    state: VmState
    accel_in_use: None | str | Unset = UNSET
    deleted: bool | Unset = UNSET
    error: None | str | Unset = UNSET
    guest_initiated_stop: bool | Unset = UNSET
    guest_interfaces: list[GuestInterface] | Unset = UNSET
    pid: int | None | Unset = UNSET
    reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.guest_interface import GuestInterface # noqa: PLC0415
        observed_generation = self.observed_generation

        state = self.state.value

        accel_in_use: None | str | Unset
        if isinstance(self.accel_in_use, Unset):
            accel_in_use = UNSET
        else:
            accel_in_use = self.accel_in_use

        deleted = self.deleted

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        guest_initiated_stop = self.guest_initiated_stop

        guest_interfaces: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.guest_interfaces, Unset):
            guest_interfaces = []
            for guest_interfaces_item_data in self.guest_interfaces:
                guest_interfaces_item = guest_interfaces_item_data.to_dict()
                guest_interfaces.append(guest_interfaces_item)



        pid: int | None | Unset
        if isinstance(self.pid, Unset):
            pid = UNSET
        else:
            pid = self.pid

        reason: None | str | Unset
        if isinstance(self.reason, Unset):
            reason = UNSET
        else:
            reason = self.reason


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "observed_generation": observed_generation,
            "state": state,
        })
        if accel_in_use is not UNSET:
            field_dict["accel_in_use"] = accel_in_use
        if deleted is not UNSET:
            field_dict["deleted"] = deleted
        if error is not UNSET:
            field_dict["error"] = error
        if guest_initiated_stop is not UNSET:
            field_dict["guest_initiated_stop"] = guest_initiated_stop
        if guest_interfaces is not UNSET:
            field_dict["guest_interfaces"] = guest_interfaces
        if pid is not UNSET:
            field_dict["pid"] = pid
        if reason is not UNSET:
            field_dict["reason"] = reason

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.guest_interface import GuestInterface # noqa: PLC0415
        d = dict(src_dict)
        observed_generation = d.pop("observed_generation")

        state = VmState(d.pop("state"))




        def _parse_accel_in_use(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        accel_in_use = _parse_accel_in_use(d.pop("accel_in_use", UNSET))


        deleted = d.pop("deleted", UNSET)

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))


        guest_initiated_stop = d.pop("guest_initiated_stop", UNSET)

        _guest_interfaces = d.pop("guest_interfaces", UNSET)
        guest_interfaces: list[GuestInterface] | Unset = UNSET
        if _guest_interfaces is not UNSET:
            guest_interfaces = []
            for guest_interfaces_item_data in _guest_interfaces:
                guest_interfaces_item = GuestInterface.from_dict(guest_interfaces_item_data)



                guest_interfaces.append(guest_interfaces_item)


        def _parse_pid(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pid = _parse_pid(d.pop("pid", UNSET))


        def _parse_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        reason = _parse_reason(d.pop("reason", UNSET))


        vm_status_report = cls(
            observed_generation=observed_generation,
            state=state,
            accel_in_use=accel_in_use,
            deleted=deleted,
            error=error,
            guest_initiated_stop=guest_initiated_stop,
            guest_interfaces=guest_interfaces,
            pid=pid,
            reason=reason,
        )


        vm_status_report.additional_properties = d
        return vm_status_report

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
