from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.node_state import NodeState
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.resources import Resources
  from ..models.tunnel_endpoint import TunnelEndpoint





T = TypeVar("T", bound="Node")



@_attrs_define
class Node:
    """ A host that runs VMs.

        Attributes:
            agent_url (str):
            allocated (Resources): Resources of a node.
            capacity (Resources): Resources of a node.
            kvm_usable (bool):
            last_heartbeat (int):
            name (str):
            qemu_version (str):
            registered_at (int):
            state (NodeState): What a node is allowed to do.
            vms (int):
            site (None | str | Unset): The node's site (none: the default site).
            tunnel (None | TunnelEndpoint | Unset):
            vtep_address (None | str | Unset): The IPv4 address other nodes send this node's overlay (VXLAN) traffic to.
     """

    agent_url: str
    allocated: Resources
    capacity: Resources
    kvm_usable: bool
    last_heartbeat: int
    name: str
    qemu_version: str
    registered_at: int
    state: NodeState
    vms: int
    site: None | str | Unset = UNSET
    tunnel: None | TunnelEndpoint | Unset = UNSET
    vtep_address: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.resources import Resources # noqa: PLC0415
        from ..models.tunnel_endpoint import TunnelEndpoint # noqa: PLC0415
        agent_url = self.agent_url

        allocated = self.allocated.to_dict()

        capacity = self.capacity.to_dict()

        kvm_usable = self.kvm_usable

        last_heartbeat = self.last_heartbeat

        name = self.name

        qemu_version = self.qemu_version

        registered_at = self.registered_at

        state = self.state.value

        vms = self.vms

        site: None | str | Unset
        if isinstance(self.site, Unset):
            site = UNSET
        else:
            site = self.site

        tunnel: dict[str, Any] | None | Unset
        if isinstance(self.tunnel, Unset):
            tunnel = UNSET
        elif isinstance(self.tunnel, TunnelEndpoint):
            tunnel = self.tunnel.to_dict()
        else:
            tunnel = self.tunnel

        vtep_address: None | str | Unset
        if isinstance(self.vtep_address, Unset):
            vtep_address = UNSET
        else:
            vtep_address = self.vtep_address


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "agent_url": agent_url,
            "allocated": allocated,
            "capacity": capacity,
            "kvm_usable": kvm_usable,
            "last_heartbeat": last_heartbeat,
            "name": name,
            "qemu_version": qemu_version,
            "registered_at": registered_at,
            "state": state,
            "vms": vms,
        })
        if site is not UNSET:
            field_dict["site"] = site
        if tunnel is not UNSET:
            field_dict["tunnel"] = tunnel
        if vtep_address is not UNSET:
            field_dict["vtep_address"] = vtep_address

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.resources import Resources # noqa: PLC0415
        from ..models.tunnel_endpoint import TunnelEndpoint # noqa: PLC0415
        d = dict(src_dict)
        agent_url = d.pop("agent_url")

        allocated = Resources.from_dict(d.pop("allocated"))




        capacity = Resources.from_dict(d.pop("capacity"))




        kvm_usable = d.pop("kvm_usable")

        last_heartbeat = d.pop("last_heartbeat")

        name = d.pop("name")

        qemu_version = d.pop("qemu_version")

        registered_at = d.pop("registered_at")

        state = NodeState(d.pop("state"))




        vms = d.pop("vms")

        def _parse_site(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        site = _parse_site(d.pop("site", UNSET))


        def _parse_tunnel(data: object) -> None | TunnelEndpoint | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                tunnel_type_0 = TunnelEndpoint.from_dict(data)



                return tunnel_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | TunnelEndpoint | Unset, data)

        tunnel = _parse_tunnel(d.pop("tunnel", UNSET))


        def _parse_vtep_address(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        vtep_address = _parse_vtep_address(d.pop("vtep_address", UNSET))


        node = cls(
            agent_url=agent_url,
            allocated=allocated,
            capacity=capacity,
            kvm_usable=kvm_usable,
            last_heartbeat=last_heartbeat,
            name=name,
            qemu_version=qemu_version,
            registered_at=registered_at,
            state=state,
            vms=vms,
            site=site,
            tunnel=tunnel,
            vtep_address=vtep_address,
        )


        node.additional_properties = d
        return node

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
