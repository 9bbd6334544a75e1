"""The MQTT subscription matcher is read by paho's network thread while the program's
threads subscribe: a lookup must never fail because the cache changed under it."""

from __future__ import annotations

import pytest

paho_matcher = pytest.importorskip("paho.mqtt.matcher")

from telemetryflow_bootstrap.instrumentation._mqtt_subscriptions import (  # noqa: E402
    Subscriptions,
)


class _ClearedAfterMembershipTest(dict):
    """A cache another thread clears right after this thread found its topic in it (the
    interleaving a lock-free ``in`` followed by ``[]`` allows)."""

    def __contains__(self, key: object) -> bool:
        found = dict.__contains__(self, key)
        self.clear()
        return found


def test_a_topic_cleared_from_the_cache_mid_lookup_is_matched_again() -> None:
    subscriptions = Subscriptions(paho_matcher.MQTTMatcher)
    subscriptions.change(["sensors/+/temp"], add=True)
    assert subscriptions.match("sensors/1/temp") == ("sensors/+/temp", "")
    racing = _ClearedAfterMembershipTest(subscriptions._matched)
    subscriptions._matched = racing
    assert subscriptions.match("sensors/1/temp") == ("sensors/+/temp", "")
    assert subscriptions.match("other/topic") is None
    assert subscriptions.match("other/topic") is None  # a cached miss, not a new lookup


def test_changes_to_the_filters_are_seen_by_the_next_match() -> None:
    subscriptions = Subscriptions(paho_matcher.MQTTMatcher)
    subscriptions.change(["$share/workers/jobs/#"], add=True)
    assert subscriptions.match("jobs/7") == ("jobs/#", "workers")
    subscriptions.change(["jobs/#"], add=False)
    assert subscriptions.match("jobs/7") is None
