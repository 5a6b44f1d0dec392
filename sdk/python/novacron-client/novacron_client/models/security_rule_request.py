from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.direction import Direction
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="SecurityRuleRequest")



@_attrs_define
class SecurityRuleRequest:
    """ Body of `POST /api/v1/security-groups/{name}/rules`: `--in tcp/80 --from 10.0.0.0/8`.

        Attributes:
            direction (Direction): Which way a rule looks: traffic into the NIC, or out of it.
            traffic (str): `tcp/80`, `udp/5000-5100`, `tcp`, `udp`, `icmp` or `any`.
            cidr (None | str | Unset): The other end as an IPv4 CIDR (default `0.0.0.0/0` when no group is named).
            group (None | str | Unset): The other end as the VMs of this group (same project).
     """

    direction: Direction
    traffic: str
    cidr: None | str | Unset = UNSET
    group: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        direction = self.direction.value

        traffic = self.traffic

        cidr: None | str | Unset
        if isinstance(self.cidr, Unset):
            cidr = UNSET
        else:
            cidr = self.cidr

        group: None | str | Unset
        if isinstance(self.group, Unset):
            group = UNSET
        else:
            group = self.group


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "direction": direction,
            "traffic": traffic,
        })
        if cidr is not UNSET:
            field_dict["cidr"] = cidr
        if group is not UNSET:
            field_dict["group"] = group

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        direction = Direction(d.pop("direction"))




        traffic = d.pop("traffic")

        def _parse_cidr(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        cidr = _parse_cidr(d.pop("cidr", UNSET))


        def _parse_group(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        group = _parse_group(d.pop("group", UNSET))


        security_rule_request = cls(
            direction=direction,
            traffic=traffic,
            cidr=cidr,
            group=group,
        )

        return security_rule_request

