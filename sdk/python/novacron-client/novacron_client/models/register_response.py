from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="RegisterResponse")



@_attrs_define
class RegisterResponse:
    """ Answer of a registration: the node's credentials. The token authenticates the agent to
    the control plane; the certificate (signed by the cluster CA) serves the agent's own
    HTTPS endpoint and node-to-node DWCP.

        Attributes:
            ca_cert_pem (str):
            cert_pem (str):
            key_pem (str):
            lease_ttl_ms (int): The node's liveness lease: without a heartbeat for this long the node counts as lost,
                and the agent fences its HA VMs itself.
            node_token (str):
            server_token (str): Secret the control plane presents when it calls the agent.
            cert_not_after (int | None | Unset): When the certificate expires (Unix seconds); the agent registers again with
                its node
                token well before, which issues a new one.
     """

    ca_cert_pem: str
    cert_pem: str
    key_pem: str
    lease_ttl_ms: int
    node_token: str
    server_token: str
    cert_not_after: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        ca_cert_pem = self.ca_cert_pem

        cert_pem = self.cert_pem

        key_pem = self.key_pem

        lease_ttl_ms = self.lease_ttl_ms

        node_token = self.node_token

        server_token = self.server_token

        cert_not_after: int | None | Unset
        if isinstance(self.cert_not_after, Unset):
            cert_not_after = UNSET
        else:
            cert_not_after = self.cert_not_after


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "ca_cert_pem": ca_cert_pem,
            "cert_pem": cert_pem,
            "key_pem": key_pem,
            "lease_ttl_ms": lease_ttl_ms,
            "node_token": node_token,
            "server_token": server_token,
        })
        if cert_not_after is not UNSET:
            field_dict["cert_not_after"] = cert_not_after

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ca_cert_pem = d.pop("ca_cert_pem")

        cert_pem = d.pop("cert_pem")

        key_pem = d.pop("key_pem")

        lease_ttl_ms = d.pop("lease_ttl_ms")

        node_token = d.pop("node_token")

        server_token = d.pop("server_token")

        def _parse_cert_not_after(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cert_not_after = _parse_cert_not_after(d.pop("cert_not_after", UNSET))


        register_response = cls(
            ca_cert_pem=ca_cert_pem,
            cert_pem=cert_pem,
            key_pem=key_pem,
            lease_ttl_ms=lease_ttl_ms,
            node_token=node_token,
            server_token=server_token,
            cert_not_after=cert_not_after,
        )


        register_response.additional_properties = d
        return register_response

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
