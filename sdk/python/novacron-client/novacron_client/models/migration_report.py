from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.migration_progress import MigrationProgress





T = TypeVar("T", bound="MigrationReport")



@_attrs_define
class MigrationReport:
    """ Agent → control plane: progress or failure of a migration
    (`PUT /api/v1/agent/migrations/{id}`).

        Attributes:
            progress (MigrationProgress): Live figures of a running migration (reported by the source agent).
            failed (None | str | Unset): Set when this side failed (the VM stays on the source).
            finished (bool | Unset): Source only, after the switch-over: the source is released.
     """

    progress: MigrationProgress
    failed: None | str | Unset = UNSET
    finished: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.migration_progress import MigrationProgress # noqa: PLC0415
        progress = self.progress.to_dict()

        failed: None | str | Unset
        if isinstance(self.failed, Unset):
            failed = UNSET
        else:
            failed = self.failed

        finished = self.finished


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "progress": progress,
        })
        if failed is not UNSET:
            field_dict["failed"] = failed
        if finished is not UNSET:
            field_dict["finished"] = finished

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.migration_progress import MigrationProgress # noqa: PLC0415
        d = dict(src_dict)
        progress = MigrationProgress.from_dict(d.pop("progress"))




        def _parse_failed(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        failed = _parse_failed(d.pop("failed", UNSET))


        finished = d.pop("finished", UNSET)

        migration_report = cls(
            progress=progress,
            failed=failed,
            finished=finished,
        )


        migration_report.additional_properties = d
        return migration_report

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
