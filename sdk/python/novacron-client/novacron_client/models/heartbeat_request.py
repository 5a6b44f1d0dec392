from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.node_sample import NodeSample





T = TypeVar("T", bound="HeartbeatRequest")



@_attrs_define
class HeartbeatRequest:
    """ Body of `POST /api/v1/agent/heartbeat`.

        Attributes:
            running_vms (int):
            stats (NodeSample | None | Unset):
     """

    running_vms: int
    stats: NodeSample | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.node_sample import NodeSample # noqa: PLC0415
        running_vms = self.running_vms

        stats: dict[str, Any] | None | Unset
        if isinstance(self.stats, Unset):
            stats = UNSET
        elif isinstance(self.stats, NodeSample):
            stats = self.stats.to_dict()
        else:
            stats = self.stats


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "running_vms": running_vms,
        })
        if stats is not UNSET:
            field_dict["stats"] = stats

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.node_sample import NodeSample # noqa: PLC0415
        d = dict(src_dict)
        running_vms = d.pop("running_vms")

        def _parse_stats(data: object) -> NodeSample | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                stats_type_0 = NodeSample.from_dict(data)



                return stats_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(NodeSample | None | Unset, data)

        stats = _parse_stats(d.pop("stats", UNSET))


        heartbeat_request = cls(
            running_vms=running_vms,
            stats=stats,
        )


        heartbeat_request.additional_properties = d
        return heartbeat_request

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
