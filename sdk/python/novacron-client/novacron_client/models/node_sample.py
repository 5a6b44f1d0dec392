from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.node_usage import NodeUsage
  from ..models.vm_sample import VmSample





T = TypeVar("T", bound="NodeSample")



@_attrs_define
class NodeSample:
    """ One sample of a node and of the VMs running on it, taken by its agent.

        Attributes:
            at_ms (int | Unset): When the sample was taken (Unix milliseconds, the agent's clock). Default: 0.
            usage (NodeUsage | Unset): A node's own figures.
            vms (list[VmSample] | Unset): The VMs whose QEMU runs on the node.
     """

    at_ms: int | Unset = 0
    usage: NodeUsage | Unset = UNSET
    vms: list[VmSample] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.node_usage import NodeUsage # noqa: PLC0415
        from ..models.vm_sample import VmSample # noqa: PLC0415
        at_ms = self.at_ms

        usage: dict[str, Any] | Unset = UNSET
        if not isinstance(self.usage, Unset):
            usage = self.usage.to_dict()

        vms: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.vms, Unset):
            vms = []
            for vms_item_data in self.vms:
                vms_item = vms_item_data.to_dict()
                vms.append(vms_item)




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if at_ms is not UNSET:
            field_dict["at_ms"] = at_ms
        if usage is not UNSET:
            field_dict["usage"] = usage
        if vms is not UNSET:
            field_dict["vms"] = vms

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.node_usage import NodeUsage # noqa: PLC0415
        from ..models.vm_sample import VmSample # noqa: PLC0415
        d = dict(src_dict)
        at_ms = d.pop("at_ms", UNSET)

        _usage = d.pop("usage", UNSET)
        usage: NodeUsage | Unset
        if isinstance(_usage,  Unset):
            usage = UNSET
        else:
            usage = NodeUsage.from_dict(_usage)




        _vms = d.pop("vms", UNSET)
        vms: list[VmSample] | Unset = UNSET
        if _vms is not UNSET:
            vms = []
            for vms_item_data in _vms:
                vms_item = VmSample.from_dict(vms_item_data)



                vms.append(vms_item)


        node_sample = cls(
            at_ms=at_ms,
            usage=usage,
            vms=vms,
        )


        node_sample.additional_properties = d
        return node_sample

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
