from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.direction import Direction
from ..models.protocol import Protocol
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="SecurityRule")



@_attrs_define
class SecurityRule:
    """ One rule of a group, as stored and shown.

        Attributes:
            direction (Direction): Which way a rule looks: traffic into the NIC, or out of it.
            id (int): Unique in its group and never reused (`security-group rule delete GROUP ID`).
            protocol (Protocol): The IPv4 protocol a rule matches.
            cidr (None | str | Unset): The other end as an IPv4 CIDR (the source of `in` traffic, the destination of
                `out` traffic)...
            group (None | str | Unset): ...or as the NICs of the VMs in this group of the same project.
            port_max (int | None | Unset):
            port_min (int | None | Unset): Inclusive destination port range (TCP and UDP); absent for every port.
     """

    direction: Direction
    id: int
    protocol: Protocol
    cidr: None | str | Unset = UNSET
    group: None | str | Unset = UNSET
    port_max: int | None | Unset = UNSET
    port_min: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        direction = self.direction.value

        id = self.id

        protocol = self.protocol.value

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

        port_max: int | None | Unset
        if isinstance(self.port_max, Unset):
            port_max = UNSET
        else:
            port_max = self.port_max

        port_min: int | None | Unset
        if isinstance(self.port_min, Unset):
            port_min = UNSET
        else:
            port_min = self.port_min


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "direction": direction,
            "id": id,
            "protocol": protocol,
        })
        if cidr is not UNSET:
            field_dict["cidr"] = cidr
        if group is not UNSET:
            field_dict["group"] = group
        if port_max is not UNSET:
            field_dict["port_max"] = port_max
        if port_min is not UNSET:
            field_dict["port_min"] = port_min

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        direction = Direction(d.pop("direction"))




        id = d.pop("id")

        protocol = Protocol(d.pop("protocol"))




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


        def _parse_port_max(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        port_max = _parse_port_max(d.pop("port_max", UNSET))


        def _parse_port_min(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        port_min = _parse_port_min(d.pop("port_min", UNSET))


        security_rule = cls(
            direction=direction,
            id=id,
            protocol=protocol,
            cidr=cidr,
            group=group,
            port_max=port_max,
            port_min=port_min,
        )


        security_rule.additional_properties = d
        return security_rule

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
