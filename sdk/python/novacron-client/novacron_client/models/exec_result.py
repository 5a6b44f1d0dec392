from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.output_encoding import OutputEncoding
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ExecResult")



@_attrs_define
class ExecResult:
    """ What a command run in the guest did.

        Attributes:
            elapsed_ms (int): Milliseconds from asking the guest to the command's end.
            encoding (OutputEncoding): How `stdout` and `stderr` of an [`ExecResult`] are written.
            stderr (str):
            stdout (str):
            exit_code (int | None | Unset): Its exit status; absent when a signal ended it.
            signal (int | None | Unset): The signal that ended it, if one did.
            stderr_truncated (bool | Unset):
            stdout_truncated (bool | Unset): The guest agent kept only the first 16 MiB of the stream.
     """

    elapsed_ms: int
    encoding: OutputEncoding
    stderr: str
    stdout: str
    exit_code: int | None | Unset = UNSET
    signal: int | None | Unset = UNSET
    stderr_truncated: bool | Unset = UNSET
    stdout_truncated: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        elapsed_ms = self.elapsed_ms

        encoding = self.encoding.value

        stderr = self.stderr

        stdout = self.stdout

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        signal: int | None | Unset
        if isinstance(self.signal, Unset):
            signal = UNSET
        else:
            signal = self.signal

        stderr_truncated = self.stderr_truncated

        stdout_truncated = self.stdout_truncated


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "elapsed_ms": elapsed_ms,
            "encoding": encoding,
            "stderr": stderr,
            "stdout": stdout,
        })
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if signal is not UNSET:
            field_dict["signal"] = signal
        if stderr_truncated is not UNSET:
            field_dict["stderr_truncated"] = stderr_truncated
        if stdout_truncated is not UNSET:
            field_dict["stdout_truncated"] = stdout_truncated

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        elapsed_ms = d.pop("elapsed_ms")

        encoding = OutputEncoding(d.pop("encoding"))




        stderr = d.pop("stderr")

        stdout = d.pop("stdout")

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))


        def _parse_signal(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        signal = _parse_signal(d.pop("signal", UNSET))


        stderr_truncated = d.pop("stderr_truncated", UNSET)

        stdout_truncated = d.pop("stdout_truncated", UNSET)

        exec_result = cls(
            elapsed_ms=elapsed_ms,
            encoding=encoding,
            stderr=stderr,
            stdout=stdout,
            exit_code=exit_code,
            signal=signal,
            stderr_truncated=stderr_truncated,
            stdout_truncated=stdout_truncated,
        )


        exec_result.additional_properties = d
        return exec_result

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
