from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="PruneRequest")



@_attrs_define
class PruneRequest:
    """ Body of `POST /api/v1/backup/repos/{name}/prune`.

        Attributes:
            keep_daily (int | Unset):
            keep_hourly (int | Unset):
            keep_last (int | Unset):
            keep_monthly (int | Unset):
            keep_weekly (int | Unset):
            keep_yearly (int | Unset):
            dry_run (bool | Unset):
            vm (None | str | Unset): Only this VM's backups.
     """

    keep_daily: int | Unset = UNSET
    keep_hourly: int | Unset = UNSET
    keep_last: int | Unset = UNSET
    keep_monthly: int | Unset = UNSET
    keep_weekly: int | Unset = UNSET
    keep_yearly: int | Unset = UNSET
    dry_run: bool | Unset = UNSET
    vm: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        keep_daily = self.keep_daily

        keep_hourly = self.keep_hourly

        keep_last = self.keep_last

        keep_monthly = self.keep_monthly

        keep_weekly = self.keep_weekly

        keep_yearly = self.keep_yearly

        dry_run = self.dry_run

        vm: None | str | Unset
        if isinstance(self.vm, Unset):
            vm = UNSET
        else:
            vm = self.vm


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
        })
        if keep_daily is not UNSET:
            field_dict["keep_daily"] = keep_daily
        if keep_hourly is not UNSET:
            field_dict["keep_hourly"] = keep_hourly
        if keep_last is not UNSET:
            field_dict["keep_last"] = keep_last
        if keep_monthly is not UNSET:
            field_dict["keep_monthly"] = keep_monthly
        if keep_weekly is not UNSET:
            field_dict["keep_weekly"] = keep_weekly
        if keep_yearly is not UNSET:
            field_dict["keep_yearly"] = keep_yearly
        if dry_run is not UNSET:
            field_dict["dry_run"] = dry_run
        if vm is not UNSET:
            field_dict["vm"] = vm

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        keep_daily = d.pop("keep_daily", UNSET)

        keep_hourly = d.pop("keep_hourly", UNSET)

        keep_last = d.pop("keep_last", UNSET)

        keep_monthly = d.pop("keep_monthly", UNSET)

        keep_weekly = d.pop("keep_weekly", UNSET)

        keep_yearly = d.pop("keep_yearly", UNSET)

        dry_run = d.pop("dry_run", UNSET)

        def _parse_vm(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        vm = _parse_vm(d.pop("vm", UNSET))


        prune_request = cls(
            keep_daily=keep_daily,
            keep_hourly=keep_hourly,
            keep_last=keep_last,
            keep_monthly=keep_monthly,
            keep_weekly=keep_weekly,
            keep_yearly=keep_yearly,
            dry_run=dry_run,
            vm=vm,
        )


        prune_request.additional_properties = d
        return prune_request

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
