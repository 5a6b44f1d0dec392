from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="MigrationProgress")



@_attrs_define
class MigrationProgress:
    """ Live figures of a running migration (reported by the source agent).

        Attributes:
            bytes_sent (int): Bytes put on the link (after dedup, deltas and compression).
            dirty_rate_bytes_per_sec (int): Bytes the guest dirties per second.
            disk_payload_bytes (int): Of `payload_bytes`, disk blocks.
            disk_remaining_bytes (int): Disk bytes still to mirror.
            elapsed_ms (int):
            payload_bytes (int): Bytes carried for the VM: QEMU's migration stream plus disk blocks.
            phase (str): `preparing`, `disk sync`, `memory pre-copy pass N`, `stop-and-copy`, `switch-over`,
                `completed`, `failed`.
            rate_bps (float): Wire rate over the last second, bits/s.
            remaining_ram_bytes (int): RAM still to send in this pass.
            throttle_percent (int): Guest CPU throttle applied by auto-converge, percent (0: none).
            downtime_bound_ms (float | None | Unset): Error bound of `downtime_ms` from the clock comparison, ms.
            downtime_ms (int | None | Unset): The guest's real pause, once known: the source QEMU's STOP to the destination
                QEMU's
                RESUME (event timestamps, the two hosts' clocks compared by the agents).
            eta_seconds (float | None | Unset):
            fault_latency_p50_ms (float | None | Unset): Post-copy: how long a faulted page waited, from the destination's
                request to the page
                reaching its QEMU, ms (median and 99th percentile).
            fault_latency_p99_ms (float | None | Unset):
            faults_served (int | Unset): Post-copy: page faults the destination served (its page requests on the return
                path).
            pause_floor_ms (int | None | Unset): The shortest pause the link allows (round trips, the pipe's drain, the
                device state),
                once measured.
            postcopy_reason (None | str | Unset):
            postcopy_switch_ms (int | None | Unset): Post-copy: when the source switched, ms since the start, and the
                policy's reason.
            predicted_downtime_ms (int | None | Unset): Pause expected if the VM stopped now.
            raised_max_downtime_ms (int | None | Unset): The pause limit in force when `max_downtime_ms` was the default and
                the link cannot
                pause the guest for that little.
            source_downtime_ms (int | None | Unset): QEMU's own downtime figure on the source (its stop to its last byte
                written; leaves out
                the WAN, the load at the destination, the commit and the resume).
     """

    bytes_sent: int
    dirty_rate_bytes_per_sec: int
    disk_payload_bytes: int
    disk_remaining_bytes: int
    elapsed_ms: int
    payload_bytes: int
    phase: str
    rate_bps: float
    remaining_ram_bytes: int
    throttle_percent: int
    downtime_bound_ms: float | None | Unset = UNSET
    downtime_ms: int | None | Unset = UNSET
    eta_seconds: float | None | Unset = UNSET
    fault_latency_p50_ms: float | None | Unset = UNSET
    fault_latency_p99_ms: float | None | Unset = UNSET
    faults_served: int | Unset = UNSET
    pause_floor_ms: int | None | Unset = UNSET
    postcopy_reason: None | str | Unset = UNSET
    postcopy_switch_ms: int | None | Unset = UNSET
    predicted_downtime_ms: int | None | Unset = UNSET
    raised_max_downtime_ms: int | None | Unset = UNSET
    source_downtime_ms: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        bytes_sent = self.bytes_sent

        dirty_rate_bytes_per_sec = self.dirty_rate_bytes_per_sec

        disk_payload_bytes = self.disk_payload_bytes

        disk_remaining_bytes = self.disk_remaining_bytes

        elapsed_ms = self.elapsed_ms

        payload_bytes = self.payload_bytes

        phase = self.phase

        rate_bps = self.rate_bps

        remaining_ram_bytes = self.remaining_ram_bytes

        throttle_percent = self.throttle_percent

        downtime_bound_ms: float | None | Unset
        if isinstance(self.downtime_bound_ms, Unset):
            downtime_bound_ms = UNSET
        else:
            downtime_bound_ms = self.downtime_bound_ms

        downtime_ms: int | None | Unset
        if isinstance(self.downtime_ms, Unset):
            downtime_ms = UNSET
        else:
            downtime_ms = self.downtime_ms

        eta_seconds: float | None | Unset
        if isinstance(self.eta_seconds, Unset):
            eta_seconds = UNSET
        else:
            eta_seconds = self.eta_seconds

        fault_latency_p50_ms: float | None | Unset
        if isinstance(self.fault_latency_p50_ms, Unset):
            fault_latency_p50_ms = UNSET
        else:
            fault_latency_p50_ms = self.fault_latency_p50_ms

        fault_latency_p99_ms: float | None | Unset
        if isinstance(self.fault_latency_p99_ms, Unset):
            fault_latency_p99_ms = UNSET
        else:
            fault_latency_p99_ms = self.fault_latency_p99_ms

        faults_served = self.faults_served

        pause_floor_ms: int | None | Unset
        if isinstance(self.pause_floor_ms, Unset):
            pause_floor_ms = UNSET
        else:
            pause_floor_ms = self.pause_floor_ms

        postcopy_reason: None | str | Unset
        if isinstance(self.postcopy_reason, Unset):
            postcopy_reason = UNSET
        else:
            postcopy_reason = self.postcopy_reason

        postcopy_switch_ms: int | None | Unset
        if isinstance(self.postcopy_switch_ms, Unset):
            postcopy_switch_ms = UNSET
        else:
            postcopy_switch_ms = self.postcopy_switch_ms

        predicted_downtime_ms: int | None | Unset
        if isinstance(self.predicted_downtime_ms, Unset):
            predicted_downtime_ms = UNSET
        else:
            predicted_downtime_ms = self.predicted_downtime_ms

        raised_max_downtime_ms: int | None | Unset
        if isinstance(self.raised_max_downtime_ms, Unset):
            raised_max_downtime_ms = UNSET
        else:
            raised_max_downtime_ms = self.raised_max_downtime_ms

        source_downtime_ms: int | None | Unset
        if isinstance(self.source_downtime_ms, Unset):
            source_downtime_ms = UNSET
        else:
            source_downtime_ms = self.source_downtime_ms


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "bytes_sent": bytes_sent,
            "dirty_rate_bytes_per_sec": dirty_rate_bytes_per_sec,
            "disk_payload_bytes": disk_payload_bytes,
            "disk_remaining_bytes": disk_remaining_bytes,
            "elapsed_ms": elapsed_ms,
            "payload_bytes": payload_bytes,
            "phase": phase,
            "rate_bps": rate_bps,
            "remaining_ram_bytes": remaining_ram_bytes,
            "throttle_percent": throttle_percent,
        })
        if downtime_bound_ms is not UNSET:
            field_dict["downtime_bound_ms"] = downtime_bound_ms
        if downtime_ms is not UNSET:
            field_dict["downtime_ms"] = downtime_ms
        if eta_seconds is not UNSET:
            field_dict["eta_seconds"] = eta_seconds
        if fault_latency_p50_ms is not UNSET:
            field_dict["fault_latency_p50_ms"] = fault_latency_p50_ms
        if fault_latency_p99_ms is not UNSET:
            field_dict["fault_latency_p99_ms"] = fault_latency_p99_ms
        if faults_served is not UNSET:
            field_dict["faults_served"] = faults_served
        if pause_floor_ms is not UNSET:
            field_dict["pause_floor_ms"] = pause_floor_ms
        if postcopy_reason is not UNSET:
            field_dict["postcopy_reason"] = postcopy_reason
        if postcopy_switch_ms is not UNSET:
            field_dict["postcopy_switch_ms"] = postcopy_switch_ms
        if predicted_downtime_ms is not UNSET:
            field_dict["predicted_downtime_ms"] = predicted_downtime_ms
        if raised_max_downtime_ms is not UNSET:
            field_dict["raised_max_downtime_ms"] = raised_max_downtime_ms
        if source_downtime_ms is not UNSET:
            field_dict["source_downtime_ms"] = source_downtime_ms

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        bytes_sent = d.pop("bytes_sent")

        dirty_rate_bytes_per_sec = d.pop("dirty_rate_bytes_per_sec")

        disk_payload_bytes = d.pop("disk_payload_bytes")

        disk_remaining_bytes = d.pop("disk_remaining_bytes")

        elapsed_ms = d.pop("elapsed_ms")

        payload_bytes = d.pop("payload_bytes")

        phase = d.pop("phase")

        rate_bps = d.pop("rate_bps")

        remaining_ram_bytes = d.pop("remaining_ram_bytes")

        throttle_percent = d.pop("throttle_percent")

        def _parse_downtime_bound_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        downtime_bound_ms = _parse_downtime_bound_ms(d.pop("downtime_bound_ms", UNSET))


        def _parse_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        downtime_ms = _parse_downtime_ms(d.pop("downtime_ms", UNSET))


        def _parse_eta_seconds(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        eta_seconds = _parse_eta_seconds(d.pop("eta_seconds", UNSET))


        def _parse_fault_latency_p50_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        fault_latency_p50_ms = _parse_fault_latency_p50_ms(d.pop("fault_latency_p50_ms", UNSET))


        def _parse_fault_latency_p99_ms(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        fault_latency_p99_ms = _parse_fault_latency_p99_ms(d.pop("fault_latency_p99_ms", UNSET))


        faults_served = d.pop("faults_served", UNSET)

        def _parse_pause_floor_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pause_floor_ms = _parse_pause_floor_ms(d.pop("pause_floor_ms", UNSET))


        def _parse_postcopy_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        postcopy_reason = _parse_postcopy_reason(d.pop("postcopy_reason", UNSET))


        def _parse_postcopy_switch_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        postcopy_switch_ms = _parse_postcopy_switch_ms(d.pop("postcopy_switch_ms", UNSET))


        def _parse_predicted_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        predicted_downtime_ms = _parse_predicted_downtime_ms(d.pop("predicted_downtime_ms", UNSET))


        def _parse_raised_max_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        raised_max_downtime_ms = _parse_raised_max_downtime_ms(d.pop("raised_max_downtime_ms", UNSET))


        def _parse_source_downtime_ms(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        source_downtime_ms = _parse_source_downtime_ms(d.pop("source_downtime_ms", UNSET))


        migration_progress = cls(
            bytes_sent=bytes_sent,
            dirty_rate_bytes_per_sec=dirty_rate_bytes_per_sec,
            disk_payload_bytes=disk_payload_bytes,
            disk_remaining_bytes=disk_remaining_bytes,
            elapsed_ms=elapsed_ms,
            payload_bytes=payload_bytes,
            phase=phase,
            rate_bps=rate_bps,
            remaining_ram_bytes=remaining_ram_bytes,
            throttle_percent=throttle_percent,
            downtime_bound_ms=downtime_bound_ms,
            downtime_ms=downtime_ms,
            eta_seconds=eta_seconds,
            fault_latency_p50_ms=fault_latency_p50_ms,
            fault_latency_p99_ms=fault_latency_p99_ms,
            faults_served=faults_served,
            pause_floor_ms=pause_floor_ms,
            postcopy_reason=postcopy_reason,
            postcopy_switch_ms=postcopy_switch_ms,
            predicted_downtime_ms=predicted_downtime_ms,
            raised_max_downtime_ms=raised_max_downtime_ms,
            source_downtime_ms=source_downtime_ms,
        )


        migration_progress.additional_properties = d
        return migration_progress

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
