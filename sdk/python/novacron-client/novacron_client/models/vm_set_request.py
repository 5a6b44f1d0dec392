from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.b_tree_map import BTreeMap





T = TypeVar("T", bound="VmSetRequest")



@_attrs_define
class VmSetRequest:
    """ Body of `POST /api/v1/vms/{name}/set`: what to change; absent fields stay as they are.
    Labels and description apply at once; CPUs and memory when the VM next starts (at once
    when it is stopped).

        Attributes:
            bandwidth_bps (int | None | Unset): The new limit of each overlay NIC, bits per second in each direction; 0
                removes it.
                Applies at once to a running VM.
            cpus (int | None | Unset):
            description (None | str | Unset): The new description (an empty string clears it).
            labels (BTreeMap | Unset):
            memory_bytes (int | None | Unset):
            remove_labels (list[str] | Unset): Label keys to remove.
     """

    bandwidth_bps: int | None | Unset = UNSET
    cpus: int | None | Unset = UNSET
    description: None | str | Unset = UNSET
    labels: BTreeMap | Unset = UNSET
    memory_bytes: int | None | Unset = UNSET
    remove_labels: list[str] | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        cpus: int | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        labels: dict[str, Any] | Unset = UNSET
        if not isinstance(self.labels, Unset):
            labels = self.labels.to_dict()

        memory_bytes: int | None | Unset
        if isinstance(self.memory_bytes, Unset):
            memory_bytes = UNSET
        else:
            memory_bytes = self.memory_bytes

        remove_labels: list[str] | Unset = UNSET
        if not isinstance(self.remove_labels, Unset):
            remove_labels = self.remove_labels




        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if description is not UNSET:
            field_dict["description"] = description
        if labels is not UNSET:
            field_dict["labels"] = labels
        if memory_bytes is not UNSET:
            field_dict["memory_bytes"] = memory_bytes
        if remove_labels is not UNSET:
            field_dict["remove_labels"] = remove_labels

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.b_tree_map import BTreeMap # noqa: PLC0415
        d = dict(src_dict)
        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        def _parse_cpus(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cpus = _parse_cpus(d.pop("cpus", UNSET))


        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))


        _labels = d.pop("labels", UNSET)
        labels: BTreeMap | Unset
        if isinstance(_labels,  Unset):
            labels = UNSET
        else:
            labels = BTreeMap.from_dict(_labels)




        def _parse_memory_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        memory_bytes = _parse_memory_bytes(d.pop("memory_bytes", UNSET))


        remove_labels = cast(list[str], d.pop("remove_labels", UNSET))


        vm_set_request = cls(
            bandwidth_bps=bandwidth_bps,
            cpus=cpus,
            description=description,
            labels=labels,
            memory_bytes=memory_bytes,
            remove_labels=remove_labels,
        )

        return vm_set_request

