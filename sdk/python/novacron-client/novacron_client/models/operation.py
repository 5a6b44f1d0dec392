from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.operation_state import OperationState
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="Operation")



@_attrs_define
class Operation:
    """ A long operation (start, stop, create, later migrate) the CLI can wait on.

        Attributes:
            created_at (int):
            id (str):
            kind (str): e.g. `vm.create`, `vm.start`.
            message (str): A short description of the current step, or the error when failed.
            project (str):
            state (OperationState): Where a long operation is.
            target (str): The resource it acts on, e.g. `vm/web1`.
            updated_at (int):
            progress (float | None | Unset): 0.0 ..= 1.0 when known.
     """

    created_at: int
    id: str
    kind: str
    message: str
    project: str
    state: OperationState
    target: str
    updated_at: int
    progress: float | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at

        id = self.id

        kind = self.kind

        message = self.message

        project = self.project

        state = self.state.value

        target = self.target

        updated_at = self.updated_at

        progress: float | None | Unset
        if isinstance(self.progress, Unset):
            progress = UNSET
        else:
            progress = self.progress


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "created_at": created_at,
            "id": id,
            "kind": kind,
            "message": message,
            "project": project,
            "state": state,
            "target": target,
            "updated_at": updated_at,
        })
        if progress is not UNSET:
            field_dict["progress"] = progress

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        created_at = d.pop("created_at")

        id = d.pop("id")

        kind = d.pop("kind")

        message = d.pop("message")

        project = d.pop("project")

        state = OperationState(d.pop("state"))




        target = d.pop("target")

        updated_at = d.pop("updated_at")

        def _parse_progress(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        progress = _parse_progress(d.pop("progress", UNSET))


        operation = cls(
            created_at=created_at,
            id=id,
            kind=kind,
            message=message,
            project=project,
            state=state,
            target=target,
            updated_at=updated_at,
            progress=progress,
        )


        operation.additional_properties = d
        return operation

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
