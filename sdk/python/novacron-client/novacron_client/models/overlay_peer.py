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
  from ..models.tunnel_endpoint import TunnelEndpoint





T = TypeVar("T", bound="OverlayPeer")



@_attrs_define
class OverlayPeer:
    """ A remote node of a network.

        Attributes:
            endpoints (list[OverlayEndpoint]):
            node (str):
            vtep (str):
            site (None | str | Unset): The peer's site (none: the default site).
            tunnel (None | TunnelEndpoint | Unset):
     """

    endpoints: list[OverlayEndpoint]
    node: str
    vtep: str
    site: None | str | Unset = UNSET
    tunnel: None | TunnelEndpoint | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.overlay_endpoint import OverlayEndpoint # noqa: PLC0415
        from ..models.tunnel_endpoint import TunnelEndpoint # noqa: PLC0415
        endpoints = []
        for endpoints_item_data in self.endpoints:
            endpoints_item = endpoints_item_data.to_dict()
            endpoints.append(endpoints_item)



        node = self.node

        vtep = self.vtep

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


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "endpoints": endpoints,
            "node": node,
            "vtep": vtep,
        })
        if site is not UNSET:
            field_dict["site"] = site
        if tunnel is not UNSET:
            field_dict["tunnel"] = tunnel

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.overlay_endpoint import OverlayEndpoint # noqa: PLC0415
        from ..models.tunnel_endpoint import TunnelEndpoint # noqa: PLC0415
        d = dict(src_dict)
        endpoints = []
        _endpoints = d.pop("endpoints")
        for endpoints_item_data in (_endpoints):
            endpoints_item = OverlayEndpoint.from_dict(endpoints_item_data)



            endpoints.append(endpoints_item)


        node = d.pop("node")

        vtep = d.pop("vtep")

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


        overlay_peer = cls(
            endpoints=endpoints,
            node=node,
            vtep=vtep,
            site=site,
            tunnel=tunnel,
        )


        overlay_peer.additional_properties = d
        return overlay_peer

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
