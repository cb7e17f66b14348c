"""Settings validation and controller construction (no servers)."""

from __future__ import annotations

import pytest

from podidentity.errors import ConfigError
from podidentity.reconciler import Controller, ControllerSettings


def test_defaults_are_secure() -> None:
    settings = ControllerSettings()
    assert settings.cluster_wide_bindings is False
    assert settings.mode == "standard"
    assert settings.arm_batch_size == 150
    assert settings.leader_election is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "magic"}, "mode"),
        ({"arm_batch_size": 151}, "150"),
        ({"workers": 0}, "workers"),
        ({"resync_interval": 0}, "resync_interval"),
        ({"lease_duration": 5, "renew_deadline": 10}, "lease timings"),
        ({"immutable_identities": "one-string"}, "not one string"),
    ],
)
def test_bad_settings_are_refused_clearly(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ControllerSettings(**kwargs)  # type: ignore[arg-type]


def test_immutable_client_ids_compare_without_case() -> None:
    settings = ControllerSettings(immutable_identities=["ABC"])
    assert settings.immutable_identities == frozenset({"abc"})


def test_standard_mode_needs_a_credential() -> None:
    with pytest.raises(ConfigError, match="AsyncTokenCredential"):
        Controller(object())
    managed = Controller(object(), settings=ControllerSettings(mode="managed"))
    assert not managed.is_leader
    assert not managed.ready
    managed.stop()  # before it ever ran: harmless
    assert not managed.healthy
