from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="EvacuateRequest")



@_attrs_define
class EvacuateRequest:
    """ Body of `POST /api/v1/evacuations/plan`.

        Attributes:
            node (str): The node to empty.
            bandwidth_bps (int | None | Unset):
            max_downtime_ms (int | None | Unset):
            parallel (int | None | Unset): Migrations at once (omitted: planned from the VMs and the link).
            to (None | str | Unset): Move every VM to this node (omitted: the scheduler chooses each destination).
     """

    node: str
    bandwidth_bps: int | None | Unset = UNSET
    max_downtime_ms: int | None | Unset = UNSET
    parallel: int | None | Unset = UNSET
    to: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        node = self.node

        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        max_downtime_ms: int | None | Unset
        if isinstance(self.max_downtime_ms, Unset):
            max_downtime_ms = UNSET
        else:
            max_downtime_ms = self.max_downtime_ms

        parallel: int | None | Unset
        if isinstance(self.parallel, Unset):
            parallel = UNSET
        else:
            parallel = self.parallel

        to: None | str | Unset
        if isinstance(self.to, Unset):
            to = UNSET
        else:
            to = self.to


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "node": node,
        })
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if max_downtime_ms is not UNSET:
            field_dict["max_downtime_ms"] = max_downtime_ms
        if parallel is not UNSET:
            field_dict["parallel"] = parallel
        if to is not UNSET:
            field_dict["to"] = to

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        node = d.pop("node")

        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        def _parse_max_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_downtime_ms = _parse_max_downtime_ms(d.pop("max_downtime_ms", UNSET))


        def _parse_parallel(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        parallel = _parse_parallel(d.pop("parallel", UNSET))


        def _parse_to(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        to = _parse_to(d.pop("to", UNSET))


        evacuate_request = cls(
            node=node,
            bandwidth_bps=bandwidth_bps,
            max_downtime_ms=max_downtime_ms,
            parallel=parallel,
            to=to,
        )

        return evacuate_request

