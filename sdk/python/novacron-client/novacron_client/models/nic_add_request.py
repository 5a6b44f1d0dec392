from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="NicAddRequest")



@_attrs_define
class NicAddRequest:
    """ Body of `POST /api/v1/vms/{name}/nics`: exactly one of `network`, `bridge`, `nat`.

        Attributes:
            bridge (None | str | Unset): An existing Linux bridge on the VM's node.
            ip (None | str | Unset): A fixed IPv4 address in the network's subnet (with `network` only).
            mac (None | str | Unset): A fixed MAC; otherwise a generated locally administered one.
            nat (bool | Unset): User-mode NAT on the VM's node.
            network (None | str | Unset): An overlay network of the VM's project.
     """

    bridge: None | str | Unset = UNSET
    ip: None | str | Unset = UNSET
    mac: None | str | Unset = UNSET
    nat: bool | Unset = UNSET
    network: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        bridge: None | str | Unset
        if isinstance(self.bridge, Unset):
            bridge = UNSET
        else:
            bridge = self.bridge

        ip: None | str | Unset
        if isinstance(self.ip, Unset):
            ip = UNSET
        else:
            ip = self.ip

        mac: None | str | Unset
        if isinstance(self.mac, Unset):
            mac = UNSET
        else:
            mac = self.mac

        nat = self.nat

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if bridge is not UNSET:
            field_dict["bridge"] = bridge
        if ip is not UNSET:
            field_dict["ip"] = ip
        if mac is not UNSET:
            field_dict["mac"] = mac
        if nat is not UNSET:
            field_dict["nat"] = nat
        if network is not UNSET:
            field_dict["network"] = network

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_bridge(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        bridge = _parse_bridge(d.pop("bridge", UNSET))


        def _parse_ip(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        ip = _parse_ip(d.pop("ip", UNSET))


        def _parse_mac(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        mac = _parse_mac(d.pop("mac", UNSET))


        nat = d.pop("nat", UNSET)

        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))


        nic_add_request = cls(
            bridge=bridge,
            ip=ip,
            mac=mac,
            nat=nat,
            network=network,
        )

        return nic_add_request

