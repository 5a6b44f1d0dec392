from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset






T = TypeVar("T", bound="Retention")



@_attrs_define
class Retention:
    """ Keep rules (the newest backup of each period is kept, for that many periods).

        Attributes:
            keep_daily (int | Unset):
            keep_hourly (int | Unset):
            keep_last (int | Unset):
            keep_monthly (int | Unset):
            keep_weekly (int | Unset):
            keep_yearly (int | Unset):
     """

    keep_daily: int | Unset = UNSET
    keep_hourly: int | Unset = UNSET
    keep_last: int | Unset = UNSET
    keep_monthly: int | Unset = UNSET
    keep_weekly: int | Unset = UNSET
    keep_yearly: int | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        keep_daily = self.keep_daily

        keep_hourly = self.keep_hourly

        keep_last = self.keep_last

        keep_monthly = self.keep_monthly

        keep_weekly = self.keep_weekly

        keep_yearly = self.keep_yearly


        field_dict: dict[str, Any] = {}

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

        retention = cls(
            keep_daily=keep_daily,
            keep_hourly=keep_hourly,
            keep_last=keep_last,
            keep_monthly=keep_monthly,
            keep_weekly=keep_weekly,
            keep_yearly=keep_yearly,
        )

        return retention

