from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.node_overlay_network import NodeOverlayNetwork
  from ..models.node_security_group import NodeSecurityGroup





T = TypeVar("T", bound="NodeOverlay")



@_attrs_define
class NodeOverlay:
    """ The overlay data plane one node must build, as `GET /api/v1/agent/overlay` answers it:
    every network a VM placed on the node uses, and where the network's other VMs are.

        Attributes:
            networks (list[NodeOverlayNetwork]):
            revision (int): Store revision of the VM records it was computed from; pass it back as `after` to
                wait for a change.
            groups_revision (int | Unset): Revision of the security groups it was computed from; pass it back as
                `after_groups` to wait for a change of those too.
            security_groups (list[NodeSecurityGroup] | Unset): The security groups of this node's endpoints and the groups
                their rules name.
            site (None | str | Unset): This node's site as the control plane knows it (none: the default site). Peers of
                another site are reached through the tunnel only.
     """

    networks: list[NodeOverlayNetwork]
    revision: int
    groups_revision: int | Unset = UNSET
    security_groups: list[NodeSecurityGroup] | Unset = UNSET
    site: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.node_overlay_network import NodeOverlayNetwork # noqa: PLC0415
        from ..models.node_security_group import NodeSecurityGroup # noqa: PLC0415
        networks = []
        for networks_item_data in self.networks:
            networks_item = networks_item_data.to_dict()
            networks.append(networks_item)



        revision = self.revision

        groups_revision = self.groups_revision

        security_groups: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.security_groups, Unset):
            security_groups = []
            for security_groups_item_data in self.security_groups:
                security_groups_item = security_groups_item_data.to_dict()
                security_groups.append(security_groups_item)



        site: None | str | Unset
        if isinstance(self.site, Unset):
            site = UNSET
        else:
            site = self.site


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "networks": networks,
            "revision": revision,
        })
        if groups_revision is not UNSET:
            field_dict["groups_revision"] = groups_revision
        if security_groups is not UNSET:
            field_dict["security_groups"] = security_groups
        if site is not UNSET:
            field_dict["site"] = site

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.node_overlay_network import NodeOverlayNetwork # noqa: PLC0415
        from ..models.node_security_group import NodeSecurityGroup # noqa: PLC0415
        d = dict(src_dict)
        networks = []
        _networks = d.pop("networks")
        for networks_item_data in (_networks):
            networks_item = NodeOverlayNetwork.from_dict(networks_item_data)



            networks.append(networks_item)


        revision = d.pop("revision")

        groups_revision = d.pop("groups_revision", UNSET)

        _security_groups = d.pop("security_groups", UNSET)
        security_groups: list[NodeSecurityGroup] | Unset = UNSET
        if _security_groups is not UNSET:
            security_groups = []
            for security_groups_item_data in _security_groups:
                security_groups_item = NodeSecurityGroup.from_dict(security_groups_item_data)



                security_groups.append(security_groups_item)


        def _parse_site(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        site = _parse_site(d.pop("site", UNSET))


        node_overlay = cls(
            networks=networks,
            revision=revision,
            groups_revision=groups_revision,
            security_groups=security_groups,
            site=site,
        )


        node_overlay.additional_properties = d
        return node_overlay

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
