from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.overlay_endpoint import OverlayEndpoint
  from ..models.overlay_peer import OverlayPeer





T = TypeVar("T", bound="NodeOverlayNetwork")



@_attrs_define
class NodeOverlayNetwork:
    """ One network on one node.

        Attributes:
            dhcp (bool):
            gateway (str):
            local (list[OverlayEndpoint]): NICs of the VMs placed on this node.
            mtu (int):
            name (str):
            peers (list[OverlayPeer]): Every other node with VMs on the network: its VTEP and their NICs.
            project (str):
            subnet (str):
            vni (int):
            dns (bool | Unset): Names `VM.NETWORK` served by the gateway.
            nat (bool | Unset): Outbound access through this node (masquerade; the gateway is the default route).
     """

    dhcp: bool
    gateway: str
    local: list[OverlayEndpoint]
    mtu: int
    name: str
    peers: list[OverlayPeer]
    project: str
    subnet: str
    vni: int
    dns: bool | Unset = UNSET
    nat: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.overlay_endpoint import OverlayEndpoint # noqa: PLC0415
        from ..models.overlay_peer import OverlayPeer # noqa: PLC0415
        dhcp = self.dhcp

        gateway = self.gateway

        local = []
        for local_item_data in self.local:
            local_item = local_item_data.to_dict()
            local.append(local_item)



        mtu = self.mtu

        name = self.name

        peers = []
        for peers_item_data in self.peers:
            peers_item = peers_item_data.to_dict()
            peers.append(peers_item)



        project = self.project

        subnet = self.subnet

        vni = self.vni

        dns = self.dns

        nat = self.nat


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "dhcp": dhcp,
            "gateway": gateway,
            "local": local,
            "mtu": mtu,
            "name": name,
            "peers": peers,
            "project": project,
            "subnet": subnet,
            "vni": vni,
        })
        if dns is not UNSET:
            field_dict["dns"] = dns
        if nat is not UNSET:
            field_dict["nat"] = nat

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.overlay_endpoint import OverlayEndpoint # noqa: PLC0415
        from ..models.overlay_peer import OverlayPeer # noqa: PLC0415
        d = dict(src_dict)
        dhcp = d.pop("dhcp")

        gateway = d.pop("gateway")

        local = []
        _local = d.pop("local")
        for local_item_data in (_local):
            local_item = OverlayEndpoint.from_dict(local_item_data)



            local.append(local_item)


        mtu = d.pop("mtu")

        name = d.pop("name")

        peers = []
        _peers = d.pop("peers")
        for peers_item_data in (_peers):
            peers_item = OverlayPeer.from_dict(peers_item_data)



            peers.append(peers_item)


        project = d.pop("project")

        subnet = d.pop("subnet")

        vni = d.pop("vni")

        dns = d.pop("dns", UNSET)

        nat = d.pop("nat", UNSET)

        node_overlay_network = cls(
            dhcp=dhcp,
            gateway=gateway,
            local=local,
            mtu=mtu,
            name=name,
            peers=peers,
            project=project,
            subnet=subnet,
            vni=vni,
            dns=dns,
            nat=nat,
        )


        node_overlay_network.additional_properties = d
        return node_overlay_network

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
