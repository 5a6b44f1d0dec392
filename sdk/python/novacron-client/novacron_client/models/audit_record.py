from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.audit_outcome import AuditOutcome
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="AuditRecord")



@_attrs_define
class AuditRecord:
    """ One request in the audit log. Never holds a secret: no bodies, no headers, no tokens
    (only a token's id).

        Attributes:
            action (str): Method and route: `POST /api/v1/vms/{name}/start`.
            actor (str): Who called: `user alice`, `token tk-…`, `admin token`, `node n1`, `join token jt-…`,
                `replica …` or `anonymous`.
            hash_ (str): BLAKE3 of `prev` and every field above ([`record_hash`]), in hex.
            outcome (AuditOutcome): How a request ended, as the audit log counts it.
            prev (str): Hash of the previous record ([`GENESIS`] for the first).
            request_id (str): The request's id (the `X-Request-Id` the caller sent, or one the control plane made
                and answered with).
            seq (int): Position in the chain, from 1, without gaps.
            source (str): The caller's address (`ip:port`), when known.
            status (int): The HTTP status of the answer.
            target (str): The path called: `/api/v1/vms/web1/start`.
            time (int):
            project (None | str | Unset): The project the request acted in; none for cluster and agent routes.
            token_id (None | str | Unset): The API token's id, if the caller used one.
            user (None | str | Unset): The user behind the token, if it is a user's.
     """

    action: str
    actor: str
    hash_: str
    outcome: AuditOutcome
    prev: str
    request_id: str
    seq: int
    source: str
    status: int
    target: str
    time: int
    project: None | str | Unset = UNSET
    token_id: None | str | Unset = UNSET
    user: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        action = self.action

        actor = self.actor

        hash_ = self.hash_

        outcome = self.outcome.value

        prev = self.prev

        request_id = self.request_id

        seq = self.seq

        source = self.source

        status = self.status

        target = self.target

        time = self.time

        project: None | str | Unset
        if isinstance(self.project, Unset):
            project = UNSET
        else:
            project = self.project

        token_id: None | str | Unset
        if isinstance(self.token_id, Unset):
            token_id = UNSET
        else:
            token_id = self.token_id

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "action": action,
            "actor": actor,
            "hash": hash_,
            "outcome": outcome,
            "prev": prev,
            "request_id": request_id,
            "seq": seq,
            "source": source,
            "status": status,
            "target": target,
            "time": time,
        })
        if project is not UNSET:
            field_dict["project"] = project
        if token_id is not UNSET:
            field_dict["token_id"] = token_id
        if user is not UNSET:
            field_dict["user"] = user

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        action = d.pop("action")

        actor = d.pop("actor")

        hash_ = d.pop("hash")

        outcome = AuditOutcome(d.pop("outcome"))




        prev = d.pop("prev")

        request_id = d.pop("request_id")

        seq = d.pop("seq")

        source = d.pop("source")

        status = d.pop("status")

        target = d.pop("target")

        time = d.pop("time")

        def _parse_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project = _parse_project(d.pop("project", UNSET))


        def _parse_token_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        token_id = _parse_token_id(d.pop("token_id", UNSET))


        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))


        audit_record = cls(
            action=action,
            actor=actor,
            hash_=hash_,
            outcome=outcome,
            prev=prev,
            request_id=request_id,
            seq=seq,
            source=source,
            status=status,
            target=target,
            time=time,
            project=project,
            token_id=token_id,
            user=user,
        )


        audit_record.additional_properties = d
        return audit_record

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
