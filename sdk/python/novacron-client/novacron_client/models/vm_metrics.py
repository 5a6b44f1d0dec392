from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.vm_rates import VmRates
  from ..models.vm_usage_point import VmUsagePoint





T = TypeVar("T", bound="VmMetrics")



@_attrs_define
class VmMetrics:
    """ Answer of `GET /api/v1/vms/{name}/metrics`: the VM's recent usage from the control
    plane's history (at most the last hour, one sample every [`SAMPLE_INTERVAL_SECONDS`]).

        Attributes:
            interval_seconds (int): Seconds between the agent's samples.
            name (str):
            node (str): The node whose agent sent the latest sample (empty before any sample).
            project (str):
            samples (list[VmUsagePoint]): Samples from `since` on, oldest first.
            latest (None | Unset | VmUsagePoint):
            rates (None | Unset | VmRates):
     """

    interval_seconds: int
    name: str
    node: str
    project: str
    samples: list[VmUsagePoint]
    latest: None | Unset | VmUsagePoint = UNSET
    rates: None | Unset | VmRates = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.vm_rates import VmRates # noqa: PLC0415
        from ..models.vm_usage_point import VmUsagePoint # noqa: PLC0415
        interval_seconds = self.interval_seconds

        name = self.name

        node = self.node

        project = self.project

        samples = []
        for samples_item_data in self.samples:
            samples_item = samples_item_data.to_dict()
            samples.append(samples_item)



        latest: dict[str, Any] | None | Unset
        if isinstance(self.latest, Unset):
            latest = UNSET
        elif isinstance(self.latest, VmUsagePoint):
            latest = self.latest.to_dict()
        else:
            latest = self.latest

        rates: dict[str, Any] | None | Unset
        if isinstance(self.rates, Unset):
            rates = UNSET
        elif isinstance(self.rates, VmRates):
            rates = self.rates.to_dict()
        else:
            rates = self.rates


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "interval_seconds": interval_seconds,
            "name": name,
            "node": node,
            "project": project,
            "samples": samples,
        })
        if latest is not UNSET:
            field_dict["latest"] = latest
        if rates is not UNSET:
            field_dict["rates"] = rates

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.vm_rates import VmRates # noqa: PLC0415
        from ..models.vm_usage_point import VmUsagePoint # noqa: PLC0415
        d = dict(src_dict)
        interval_seconds = d.pop("interval_seconds")

        name = d.pop("name")

        node = d.pop("node")

        project = d.pop("project")

        samples = []
        _samples = d.pop("samples")
        for samples_item_data in (_samples):
            samples_item = VmUsagePoint.from_dict(samples_item_data)



            samples.append(samples_item)


        def _parse_latest(data: object) -> None | Unset | VmUsagePoint:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                latest_type_0 = VmUsagePoint.from_dict(data)



                return latest_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | VmUsagePoint, data)

        latest = _parse_latest(d.pop("latest", UNSET))


        def _parse_rates(data: object) -> None | Unset | VmRates:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                rates_type_0 = VmRates.from_dict(data)



                return rates_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | Unset | VmRates, data)

        rates = _parse_rates(d.pop("rates", UNSET))


        vm_metrics = cls(
            interval_seconds=interval_seconds,
            name=name,
            node=node,
            project=project,
            samples=samples,
            latest=latest,
            rates=rates,
        )


        vm_metrics.additional_properties = d
        return vm_metrics

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
