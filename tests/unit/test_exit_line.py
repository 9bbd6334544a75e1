"""The exit's one line names what the exports left out or changed to fit OTLP (items no
encoder could encode, items past the request size limit, attributes left out, values sent
as text or as doubles) apart from what the backend or the deadline lost, tersely, and only
what is not zero: the line is unchanged when there is none."""

from __future__ import annotations

from typing import Any

from telemetryflow_bootstrap.lifecycle import _not_exported

_BASE = {"spans_dropped": 7, "logs_dropped": 3, "metric_points_dropped": 4,
         "spans_queued": 0, "logs_queued": 0, "metric_points_queued": 0,
         "backend_unreachable": None}
_HEAD = ("not all telemetry was exported at exit after the exports failed (backend down or "
         "rejecting, or no answer within TELEMETRYFLOW_TIMEOUT); dropped: spans=7 logs=3 "
         "metric points=4")


def _line(**counts: Any) -> str:
    return _not_exported("exit", 5.0, 0.1, {**_BASE, **counts})


def test_no_encoding_loss_leaves_the_line_as_it_was() -> None:
    """Zero counts (or a status without them) add nothing."""
    assert _line() == _HEAD
    assert _line(spans_unencodable=0, logs_too_large=0, attributes_left_out=0,
                 values_sent_as_text=0, metric_values_sent_as_double=0) == _HEAD


def test_items_left_out_are_named_per_reason_and_signal() -> None:
    """Of the items dropped, those no encoder could encode and those past the limit, each
    reason with only the signals it concerns."""
    assert _line(spans_unencodable=2, logs_unencodable=0, logs_too_large=1) == (
        _HEAD + " (of these, unencodable: spans=2; past the request size limit: logs=1)")


def test_values_left_out_or_changed_follow_by_name() -> None:
    """Values are not items dropped: after the counts, by name, only those not zero."""
    assert _line(attributes_left_out=0, values_sent_as_text=3,
                 metric_values_sent_as_double=1) == (
        _HEAD + "; values sent as text=3, metric values sent as double=1")
    assert _line(spans_too_large=1, attributes_left_out=2) == (
        _HEAD + " (of these, past the request size limit: spans=1); attributes left out=2")


def test_an_abandoned_exit_names_them_too() -> None:
    """A signal that abandons the exit: the same addition after its counts."""
    line = _not_exported("exit", 30.0, 0.0, {**_BASE, "logs_unencodable": 1},
                         abandoned="SIGINT")
    assert line.endswith("(abandoned on SIGINT); dropped: spans=7 logs=3 metric points=4 "
                         "(of these, unencodable: logs=1)")
