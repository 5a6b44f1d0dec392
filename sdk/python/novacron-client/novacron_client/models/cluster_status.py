from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast

if TYPE_CHECKING:
  from ..models.cluster_status_controllers import ClusterStatusControllers
  from ..models.member import Member
  from ..models.node_lease import NodeLease
  from ..models.store_health import StoreHealth





T = TypeVar("T", bound="ClusterStatus")



@_attrs_define
class ClusterStatus:
    """ Answer of `GET /api/v1/cluster/status`.

        Attributes:
            answered_by (str): Which replica answered.
            cluster_id (str):
            controllers (ClusterStatusControllers): Controller name → member id of the replica running it.
            members (list[Member]):
            node_leases (list[NodeLease]):
            store (StoreHealth):
     """

    answered_by: str
    cluster_id: str
    controllers: ClusterStatusControllers
    members: list[Member]
    node_leases: list[NodeLease]
    store: StoreHealth
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.cluster_status_controllers import ClusterStatusControllers # noqa: PLC0415
        from ..models.member import Member # noqa: PLC0415
        from ..models.node_lease import NodeLease # noqa: PLC0415
        from ..models.store_health import StoreHealth # noqa: PLC0415
        answered_by = self.answered_by

        cluster_id = self.cluster_id

        controllers = self.controllers.to_dict()

        members = []
        for members_item_data in self.members:
            members_item = members_item_data.to_dict()
            members.append(members_item)



        node_leases = []
        for node_leases_item_data in self.node_leases:
            node_leases_item = node_leases_item_data.to_dict()
            node_leases.append(node_leases_item)



        store = self.store.to_dict()


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "answered_by": answered_by,
            "cluster_id": cluster_id,
            "controllers": controllers,
            "members": members,
            "node_leases": node_leases,
            "store": store,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.cluster_status_controllers import ClusterStatusControllers # noqa: PLC0415
        from ..models.member import Member # noqa: PLC0415
        from ..models.node_lease import NodeLease # noqa: PLC0415
        from ..models.store_health import StoreHealth # noqa: PLC0415
        d = dict(src_dict)
        answered_by = d.pop("answered_by")

        cluster_id = d.pop("cluster_id")

        controllers = ClusterStatusControllers.from_dict(d.pop("controllers"))




        members = []
        _members = d.pop("members")
        for members_item_data in (_members):
            members_item = Member.from_dict(members_item_data)



            members.append(members_item)


        node_leases = []
        _node_leases = d.pop("node_leases")
        for node_leases_item_data in (_node_leases):
            node_leases_item = NodeLease.from_dict(node_leases_item_data)



            node_leases.append(node_leases_item)


        store = StoreHealth.from_dict(d.pop("store"))




        cluster_status = cls(
            answered_by=answered_by,
            cluster_id=cluster_id,
            controllers=controllers,
            members=members,
            node_leases=node_leases,
            store=store,
        )


        cluster_status.additional_properties = d
        return cluster_status

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
