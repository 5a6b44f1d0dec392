from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.desired_vm import DesiredVm





T = TypeVar("T", bound="DesiredVms")



@_attrs_define
class DesiredVms:
    """ Answer of `GET /api/v1/agent/vms`: the VMs placed on the calling node — all of them
    (`full`), or only those that changed since the revision the agent passed as `after`.

        Attributes:
            revision (int): Store revision the list was read at; pass it back as `after` to wait for changes.
            vms (list[DesiredVm]):
            full (bool | Unset): True: `vms` is every VM of the node (anything else the agent runs is not placed
                here any more). False: `vms` changed, `removed` are no longer placed here.
            removed (list[str] | Unset): `project/name` of VMs that left the node (deleted or moved).
     """

    revision: int
    vms: list[DesiredVm]
    full: bool | Unset = UNSET
    removed: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.desired_vm import DesiredVm # noqa: PLC0415
        revision = self.revision

        vms = []
        for vms_item_data in self.vms:
            vms_item = vms_item_data.to_dict()
            vms.append(vms_item)



        full = self.full

        removed: list[str] | Unset = UNSET
        if not isinstance(self.removed, Unset):
            removed = self.removed




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "revision": revision,
            "vms": vms,
        })
        if full is not UNSET:
            field_dict["full"] = full
        if removed is not UNSET:
            field_dict["removed"] = removed

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.desired_vm import DesiredVm # noqa: PLC0415
        d = dict(src_dict)
        revision = d.pop("revision")

        vms = []
        _vms = d.pop("vms")
        for vms_item_data in (_vms):
            vms_item = DesiredVm.from_dict(vms_item_data)



            vms.append(vms_item)


        full = d.pop("full", UNSET)

        removed = cast(list[str], d.pop("removed", UNSET))


        desired_vms = cls(
            revision=revision,
            vms=vms,
            full=full,
            removed=removed,
        )


        desired_vms.additional_properties = d
        return desired_vms

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
