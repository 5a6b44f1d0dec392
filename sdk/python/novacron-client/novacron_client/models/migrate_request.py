from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.migration_mode import MigrationMode
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="MigrateRequest")



@_attrs_define
class MigrateRequest:
    """ Body of `POST /api/v1/vms/{name}/migrate`.

        Attributes:
            bandwidth_bps (int | None | Unset): Cap on the wire rate of this migration, bits/s.
            deadline_seconds (int | None | Unset): Give up (VM stays on the source) when not switched over within this many
                seconds.
            max_downtime_ms (int | None | Unset): Longest acceptable pause of the guest, ms; refused when the link cannot
                pause the guest
                for that little (omitted: 300, raised to 1.5 × the link's floor where the link cannot).
            mode (MigrationMode | None | Unset):
            offline (bool | Unset): Stop the VM first and copy it stopped.
            to (None | str | Unset): Destination node (omitted: the node with the most free memory that can take the VM).
     """

    bandwidth_bps: int | None | Unset = UNSET
    deadline_seconds: int | None | Unset = UNSET
    max_downtime_ms: int | None | Unset = UNSET
    mode: MigrationMode | None | Unset = UNSET
    offline: bool | Unset = UNSET
    to: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        bandwidth_bps: int | None | Unset
        if isinstance(self.bandwidth_bps, Unset):
            bandwidth_bps = UNSET
        else:
            bandwidth_bps = self.bandwidth_bps

        deadline_seconds: int | None | Unset
        if isinstance(self.deadline_seconds, Unset):
            deadline_seconds = UNSET
        else:
            deadline_seconds = self.deadline_seconds

        max_downtime_ms: int | None | Unset
        if isinstance(self.max_downtime_ms, Unset):
            max_downtime_ms = UNSET
        else:
            max_downtime_ms = self.max_downtime_ms

        mode: None | str | Unset
        if isinstance(self.mode, Unset):
            mode = UNSET
        elif isinstance(self.mode, MigrationMode):
            mode = self.mode.value
        else:
            mode = self.mode

        offline = self.offline

        to: None | str | Unset
        if isinstance(self.to, Unset):
            to = UNSET
        else:
            to = self.to


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if deadline_seconds is not UNSET:
            field_dict["deadline_seconds"] = deadline_seconds
        if max_downtime_ms is not UNSET:
            field_dict["max_downtime_ms"] = max_downtime_ms
        if mode is not UNSET:
            field_dict["mode"] = mode
        if offline is not UNSET:
            field_dict["offline"] = offline
        if to is not UNSET:
            field_dict["to"] = to

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_bandwidth_bps(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        bandwidth_bps = _parse_bandwidth_bps(d.pop("bandwidth_bps", UNSET))


        def _parse_deadline_seconds(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        deadline_seconds = _parse_deadline_seconds(d.pop("deadline_seconds", UNSET))


        def _parse_max_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_downtime_ms = _parse_max_downtime_ms(d.pop("max_downtime_ms", UNSET))


        def _parse_mode(data: object) -> MigrationMode | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                mode_type_0 = MigrationMode(data)



                return mode_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(MigrationMode | None | Unset, data)

        mode = _parse_mode(d.pop("mode", UNSET))


        offline = d.pop("offline", UNSET)

        def _parse_to(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        to = _parse_to(d.pop("to", UNSET))


        migrate_request = cls(
            bandwidth_bps=bandwidth_bps,
            deadline_seconds=deadline_seconds,
            max_downtime_ms=max_downtime_ms,
            mode=mode,
            offline=offline,
            to=to,
        )

        return migrate_request

