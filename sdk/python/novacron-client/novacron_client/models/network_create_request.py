from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="NetworkCreateRequest")



@_attrs_define
class NetworkCreateRequest:
    """ Body of `POST /api/v1/networks`.

        Attributes:
            name (str):
            subnet (str): IPv4 subnet in CIDR notation, e.g. `10.10.0.0/24`.
            dhcp (bool | Unset): Hand out addresses by DHCP (default on).
            dns (bool | Unset): DNS names `VM.NETWORK` for the network's VMs.
            gateway (None | str | Unset): Defaults to the subnet's first host address.
            mtu (int | None | Unset): MTU inside the network (default 1450: a 1500-byte underlay less VXLAN's 50).
            nat (bool | Unset): Outbound access through the node each VM runs on.
            project (None | str | Unset): Defaults to the `default` project.
     """

    name: str
    subnet: str
    dhcp: bool | Unset = UNSET
    dns: bool | Unset = UNSET
    gateway: None | str | Unset = UNSET
    mtu: int | None | Unset = UNSET
    nat: bool | Unset = UNSET
    project: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        name = self.name

        subnet = self.subnet

        dhcp = self.dhcp

        dns = self.dns

        gateway: None | str | Unset
        if isinstance(self.gateway, Unset):
            gateway = UNSET
        else:
            gateway = self.gateway

        mtu: int | None | Unset
        if isinstance(self.mtu, Unset):
            mtu = UNSET
        else:
            mtu = self.mtu

        nat = self.nat

        project: None | str | Unset
        if isinstance(self.project, Unset):
            project = UNSET
        else:
            project = self.project


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "name": name,
            "subnet": subnet,
        })
        if dhcp is not UNSET:
            field_dict["dhcp"] = dhcp
        if dns is not UNSET:
            field_dict["dns"] = dns
        if gateway is not UNSET:
            field_dict["gateway"] = gateway
        if mtu is not UNSET:
            field_dict["mtu"] = mtu
        if nat is not UNSET:
            field_dict["nat"] = nat
        if project is not UNSET:
            field_dict["project"] = project

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        subnet = d.pop("subnet")

        dhcp = d.pop("dhcp", UNSET)

        dns = d.pop("dns", UNSET)

        def _parse_gateway(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        gateway = _parse_gateway(d.pop("gateway", UNSET))


        def _parse_mtu(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        mtu = _parse_mtu(d.pop("mtu", UNSET))


        nat = d.pop("nat", UNSET)

        def _parse_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project = _parse_project(d.pop("project", UNSET))


        network_create_request = cls(
            name=name,
            subnet=subnet,
            dhcp=dhcp,
            dns=dns,
            gateway=gateway,
            mtu=mtu,
            nat=nat,
            project=project,
        )

        return network_create_request

