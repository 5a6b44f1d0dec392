from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.vm_usage import VmUsage





T = TypeVar("T", bound="VmSample")



@_attrs_define
class VmSample:
    """ One VM in a [`NodeSample`].

        Attributes:
            name (str | Unset):  Default: ''.
            project (str | Unset):  Default: ''.
            usage (VmUsage | Unset): What one VM's QEMU has used since it started.
            uuid (str | Unset): Tells a VM from an earlier one of the same name. Default: ''.
     """

    name: str | Unset = ''
    project: str | Unset = ''
    usage: VmUsage | Unset = UNSET
    uuid: str | Unset = ''
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.vm_usage import VmUsage # noqa: PLC0415
        name = self.name

        project = self.project

        usage: dict[str, Any] | Unset = UNSET
        if not isinstance(self.usage, Unset):
            usage = self.usage.to_dict()

        uuid = self.uuid


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if name is not UNSET:
            field_dict["name"] = name
        if project is not UNSET:
            field_dict["project"] = project
        if usage is not UNSET:
            field_dict["usage"] = usage
        if uuid is not UNSET:
            field_dict["uuid"] = uuid

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.vm_usage import VmUsage # noqa: PLC0415
        d = dict(src_dict)
        name = d.pop("name", UNSET)

        project = d.pop("project", UNSET)

        _usage = d.pop("usage", UNSET)
        usage: VmUsage | Unset
        if isinstance(_usage,  Unset):
            usage = UNSET
        else:
            usage = VmUsage.from_dict(_usage)




        uuid = d.pop("uuid", UNSET)

        vm_sample = cls(
            name=name,
            project=project,
            usage=usage,
            uuid=uuid,
        )


        vm_sample.additional_properties = d
        return vm_sample

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
