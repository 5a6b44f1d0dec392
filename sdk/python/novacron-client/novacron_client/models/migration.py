from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.migration_state import MigrationState
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.migration_progress import MigrationProgress





T = TypeVar("T", bound="Migration")



@_attrs_define
class Migration:
    """ One migration, as `migration show` prints it.

        Attributes:
            created_at (int):
            destination (str):
            id (str):
            max_downtime_ms (int):
            message (str): What is happening, or why it failed.
            offline (bool):
            operation (str): The operation a CLI can wait on.
            progress (MigrationProgress): Live figures of a running migration (reported by the source agent).
            project (str):
            source (str):
            state (MigrationState): Where a migration is.
            updated_at (int):
            vm (str):
            bandwidth_bps (int | None | Unset):
            deadline_seconds (int | None | Unset):
            max_downtime_default (bool | Unset): `max_downtime_ms` was not given: the default, raised to what the link
                allows when it
                cannot pause the guest for that little (a given limit is refused instead).
     """

    created_at: int
    destination: str
    id: str
    max_downtime_ms: int
    message: str
    offline: bool
    operation: str
    progress: MigrationProgress
    project: str
    source: str
    state: MigrationState
    updated_at: int
    vm: str
    bandwidth_bps: int | None | Unset = UNSET
    deadline_seconds: int | None | Unset = UNSET
    max_downtime_default: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.migration_progress import MigrationProgress # noqa: PLC0415
        created_at = self.created_at

        destination = self.destination

        id = self.id

        max_downtime_ms = self.max_downtime_ms

        message = self.message

        offline = self.offline

        operation = self.operation

        progress = self.progress.to_dict()

        project = self.project

        source = self.source

        state = self.state.value

        updated_at = self.updated_at

        vm = self.vm

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

        max_downtime_default = self.max_downtime_default


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "destination": destination,
            "id": id,
            "max_downtime_ms": max_downtime_ms,
            "message": message,
            "offline": offline,
            "operation": operation,
            "progress": progress,
            "project": project,
            "source": source,
            "state": state,
            "updated_at": updated_at,
            "vm": vm,
        })
        if bandwidth_bps is not UNSET:
            field_dict["bandwidth_bps"] = bandwidth_bps
        if deadline_seconds is not UNSET:
            field_dict["deadline_seconds"] = deadline_seconds
        if max_downtime_default is not UNSET:
            field_dict["max_downtime_default"] = max_downtime_default

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.migration_progress import MigrationProgress # noqa: PLC0415
        d = dict(src_dict)
        created_at = d.pop("created_at")

        destination = d.pop("destination")

        id = d.pop("id")

        max_downtime_ms = d.pop("max_downtime_ms")

        message = d.pop("message")

        offline = d.pop("offline")

        operation = d.pop("operation")

        progress = MigrationProgress.from_dict(d.pop("progress"))




        project = d.pop("project")

        source = d.pop("source")

        state = MigrationState(d.pop("state"))




        updated_at = d.pop("updated_at")

        vm = d.pop("vm")

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


        max_downtime_default = d.pop("max_downtime_default", UNSET)

        migration = cls(
            created_at=created_at,
            destination=destination,
            id=id,
            max_downtime_ms=max_downtime_ms,
            message=message,
            offline=offline,
            operation=operation,
            progress=progress,
            project=project,
            source=source,
            state=state,
            updated_at=updated_at,
            vm=vm,
            bandwidth_bps=bandwidth_bps,
            deadline_seconds=deadline_seconds,
            max_downtime_default=max_downtime_default,
        )


        migration.additional_properties = d
        return migration

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
