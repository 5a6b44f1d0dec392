from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.retention import Retention





T = TypeVar("T", bound="BackupSchedule")



@_attrs_define
class BackupSchedule:
    """ A periodic backup of one VM.

        Attributes:
            every_seconds (int):
            repo (str):
            vm (str):
            last_operation (None | str | Unset):
            last_run (int | Unset):
            retention (Retention | Unset): Keep rules (the newest backup of each period is kept, for that many periods).
     """

    every_seconds: int
    repo: str
    vm: str
    last_operation: None | str | Unset = UNSET
    last_run: int | Unset = UNSET
    retention: Retention | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.retention import Retention # noqa: PLC0415
        every_seconds = self.every_seconds

        repo = self.repo

        vm = self.vm

        last_operation: None | str | Unset
        if isinstance(self.last_operation, Unset):
            last_operation = UNSET
        else:
            last_operation = self.last_operation

        last_run = self.last_run

        retention: dict[str, Any] | Unset = UNSET
        if not isinstance(self.retention, Unset):
            retention = self.retention.to_dict()


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "every_seconds": every_seconds,
            "repo": repo,
            "vm": vm,
        })
        if last_operation is not UNSET:
            field_dict["last_operation"] = last_operation
        if last_run is not UNSET:
            field_dict["last_run"] = last_run
        if retention is not UNSET:
            field_dict["retention"] = retention

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.retention import Retention # noqa: PLC0415
        d = dict(src_dict)
        every_seconds = d.pop("every_seconds")

        repo = d.pop("repo")

        vm = d.pop("vm")

        def _parse_last_operation(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_operation = _parse_last_operation(d.pop("last_operation", UNSET))


        last_run = d.pop("last_run", UNSET)

        _retention = d.pop("retention", UNSET)
        retention: Retention | Unset
        if isinstance(_retention,  Unset):
            retention = UNSET
        else:
            retention = Retention.from_dict(_retention)




        backup_schedule = cls(
            every_seconds=every_seconds,
            repo=repo,
            vm=vm,
            last_operation=last_operation,
            last_run=last_run,
            retention=retention,
        )

        return backup_schedule

