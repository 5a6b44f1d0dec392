from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.event_kind import EventKind
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.event_data import EventData





T = TypeVar("T", bound="Event")



@_attrs_define
class Event:
    """ One event of the stream. The SSE frame carries `id` as its `id:` field and `kind` as its
    `event:` field; `data:` is this object as JSON.

        Attributes:
            action (str): What happened: `created`, `changed`, `deleted`, `state`, `progress`, `up`, `down`,
                `restarted`...
            data (EventData): The figures behind the message (state, phase, progress...), for programs.
            id (str): `<revision>-<index>`, increasing along the stream (see [`EventId`]).
            kind (EventKind): What an event is about.
            message (str): One line for people.
            resource (str): The resource the event is about: `vm/web1`, `node/n1`, `operation/<id>`,
                `migration/<id>`.
            revision (int): The store revision of the change.
            project (None | str | Unset): The project of the resource (none for nodes, which belong to the cluster).
            related (list[str] | Unset): Other resources concerned (the VM of an operation or migration, its nodes).
     """

    action: str
    data: EventData
    id: str
    kind: EventKind
    message: str
    resource: str
    revision: int
    project: None | str | Unset = UNSET
    related: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.event_data import EventData # noqa: PLC0415
        action = self.action

        data = self.data.to_dict()

        id = self.id

        kind = self.kind.value

        message = self.message

        resource = self.resource

        revision = self.revision

        project: None | str | Unset
        if isinstance(self.project, Unset):
            project = UNSET
        else:
            project = self.project

        related: list[str] | Unset = UNSET
        if not isinstance(self.related, Unset):
            related = self.related




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "action": action,
            "data": data,
            "id": id,
            "kind": kind,
            "message": message,
            "resource": resource,
            "revision": revision,
        })
        if project is not UNSET:
            field_dict["project"] = project
        if related is not UNSET:
            field_dict["related"] = related

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.event_data import EventData # noqa: PLC0415
        d = dict(src_dict)
        action = d.pop("action")

        data = EventData.from_dict(d.pop("data"))




        id = d.pop("id")

        kind = EventKind(d.pop("kind"))




        message = d.pop("message")

        resource = d.pop("resource")

        revision = d.pop("revision")

        def _parse_project(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        project = _parse_project(d.pop("project", UNSET))


        related = cast(list[str], d.pop("related", UNSET))


        event = cls(
            action=action,
            data=data,
            id=id,
            kind=kind,
            message=message,
            resource=resource,
            revision=revision,
            project=project,
            related=related,
        )


        event.additional_properties = d
        return event

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
