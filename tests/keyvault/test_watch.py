"""Rotation against the emulated vault: what a poll costs, what it rewrites, what it keeps."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from podidentity.keyvault import (
    DirectorySink,
    FetchSettings,
    PollResult,
    VaultObject,
    Watcher,
    aio,
)
from tests.keyvault.conftest import VaultWorld


def _fill(world: VaultWorld, count: int) -> list[VaultObject]:
    for index in range(count):
        world.set(f"s{index:03d}", f"value-{index}")
    return [VaultObject(vault=world.vault, name=f"s{i:03d}") for i in range(count)]


@pytest.mark.usefixtures("full_pages")
def test_a_poll_of_100_unchanged_secrets_costs_4_list_pages(
    world: VaultWorld, tmp_path: Path
) -> None:
    objects = _fill(world, 100)
    with Watcher(objects, [DirectorySink(tmp_path)]) as watcher:
        first = watcher.poll()
        assert len(first.fetched) == 100
        assert first.written
        log = world.service.requests(world.vault)
        before = len(log.records)
        poll = watcher.poll()
        new = log.records[before:]
    assert poll.fetched == ()
    assert poll.changed == ()
    assert not poll.written
    assert [(r.method, r.path) for r in new] == [("GET", "/secrets")] * 4
    assert len(new) <= 4


@pytest.mark.usefixtures("full_pages")
def test_a_poll_with_one_change_costs_one_more_get(world: VaultWorld, tmp_path: Path) -> None:
    objects = _fill(world, 100)
    changes: list[PollResult] = []
    with Watcher(objects, [DirectorySink(tmp_path)], on_change=changes.append) as watcher:
        watcher.poll()
        world.set("s042", "rotated")
        log = world.service.requests(world.vault)
        before = len(log.records)
        poll = watcher.poll()
        new = log.records[before:]
    assert len(new) == 5
    assert [r.path for r in new].count("/secrets/s042/") == 1
    assert poll.changed == ("s042",)
    assert poll.written
    assert (tmp_path / "s042").read_text() == "rotated"
    assert (tmp_path / "s041").read_text() == "value-41"
    assert [c.changed for c in changes] == [tuple(f"s{i:03d}" for i in range(100)), ("s042",)]


def test_with_short_pages_a_poll_sees_every_secret_and_costs_the_pages_the_vault_returned(
    world: VaultWorld, tmp_path: Path
) -> None:
    assert world.service.short_pages  # the default, as a real vault: first page empty, rest short
    objects = _fill(world, 100)
    url = world.service.vault_url(world.vault)
    with ManagedIdentityCredential() as credential, SecretClient(url, credential) as client:
        listing = client.list_properties_of_secrets(max_page_size=25).by_page()
        pages = [[item.name for item in page] for page in listing]
    assert pages[0] == []
    assert len(pages) > 5
    assert all(len(page) < 25 for page in pages)
    assert sorted(name for page in pages for name in page) == [o.name for o in objects]
    with Watcher(objects, [DirectorySink(tmp_path)]) as watcher:
        first = watcher.poll()
        log = world.service.requests(world.vault)
        before = len(log.records)
        quiet = watcher.poll()
        unchanged = [(r.method, r.path) for r in log.records[before:]]
        world.set("s099", "rotated")  # on the last page
        before = len(log.records)
        poll = watcher.poll()
        changed = [(r.method, r.path) for r in log.records[before:]]
    assert first.changed == tuple(o.name for o in objects)
    assert quiet.fetched == ()
    assert not quiet.written
    assert unchanged == [("GET", "/secrets")] * len(pages)
    assert changed == [("GET", "/secrets")] * len(pages) + [("GET", "/secrets/s099/")]
    assert poll.changed == ("s099",)
    assert (tmp_path / "s099").read_text() == "rotated"
    assert (tmp_path / "s000").read_text() == "value-0"


def test_a_failing_object_keeps_its_last_good_file_and_others_rotate(
    world: VaultWorld, tmp_path: Path, fast: FetchSettings
) -> None:
    world.set("a", "a1")
    world.set("b", "b1")
    objects = [VaultObject(vault=world.vault, name=n) for n in ("a", "b")]
    with Watcher(objects, [DirectorySink(tmp_path)], settings=fast) as watcher:
        watcher.poll()
        world.set("a", "a2")
        world.service.disable(world.vault, "a")  # a new version that cannot be read
        world.tick()
        world.set("b", "b2")
        poll = watcher.poll()
        assert [f.code for f in poll.failures] == ["SecretDisabled"]
        assert poll.changed == ("b",)
        assert (tmp_path / "a").read_text() == "a1"
        assert (tmp_path / "b").read_text() == "b2"
        # Still failing: retried every poll, never removed.
        again = watcher.poll()
        assert [f.object.name for f in again.failures] == ["a"]
        assert (tmp_path / "a").read_text() == "a1"
        world.tick()
        world.service.set_enabled(world.vault, "a", True)
        healed = watcher.poll()
    assert healed.failures == ()
    assert healed.changed == ("a",)
    assert (tmp_path / "a").read_text() == "a2"


def test_a_deleted_secret_keeps_its_file(
    world: VaultWorld, tmp_path: Path, fast: FetchSettings
) -> None:
    world.set("a", "a1")
    with Watcher(
        [VaultObject(vault=world.vault, name="a")], [DirectorySink(tmp_path)], settings=fast
    ) as watcher:
        watcher.poll()
        world.service.delete_secret(world.vault, "a")
        poll = watcher.poll()
    assert [f.status_code for f in poll.failures] == [404]
    assert (tmp_path / "a").read_text() == "a1"


def test_a_pinned_version_is_never_fetched_again(world: VaultWorld, tmp_path: Path) -> None:
    version = world.set("pinned", "v1")
    world.set("pinned", "v2")
    objects = [VaultObject(vault=world.vault, name="pinned", version=version)]
    with Watcher(objects, [DirectorySink(tmp_path)]) as watcher:
        watcher.poll()
        before = len(world.service.requests(world.vault).records)
        world.set("pinned", "v3")
        poll = watcher.poll()
        after = len(world.service.requests(world.vault).records)
    assert poll.fetched == ()
    assert after == before  # nothing to list for pinned objects alone
    assert (tmp_path / "pinned").read_text() == "v1"


def test_without_list_permission_a_poll_falls_back_to_gets(
    world: VaultWorld, tmp_path: Path, fast: FetchSettings, caplog: pytest.LogCaptureFixture
) -> None:
    world.service.revoke(world.vault, world.identity.principal_id)
    world.service.grant(world.vault, world.identity.principal_id, secrets=("get",))
    world.set("a", "a1")
    with Watcher(
        [VaultObject(vault=world.vault, name="a")], [DirectorySink(tmp_path)], settings=fast
    ) as watcher:
        watcher.poll()
        world.set("a", "a2")
        poll = watcher.poll()
    assert poll.changed == ("a",)
    assert "cannot list secrets" in caplog.text
    assert (tmp_path / "a").read_text() == "a2"


def test_a_sink_that_fails_is_retried_on_the_next_poll(
    world: VaultWorld, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world.set("a", "a1")
    out = tmp_path / "out"
    out.write_text("not a directory")  # unwritable, even for root
    with Watcher([VaultObject(vault=world.vault, name="a")], [DirectorySink(out)]) as watcher:
        first = watcher.poll()
        assert not first.written
        assert f"cannot create {out}" in caplog.text
        out.unlink()
        second = watcher.poll()
    assert second.written
    assert second.changed == ()
    assert (out / "a").read_text() == "a1"


def test_run_polls_until_stopped(world: VaultWorld, tmp_path: Path) -> None:
    world.set("a", "a1")
    stop = threading.Event()
    polls: list[PollResult] = []

    def on_change(poll: PollResult) -> None:
        polls.append(poll)
        stop.set()  # the application got its files: stop after this poll

    watcher = Watcher(
        [VaultObject(vault=world.vault, name="a")],
        [DirectorySink(tmp_path)],
        interval=3600,
        on_change=on_change,
    )
    with watcher:
        watcher.run(stop)
    assert [p.changed for p in polls] == [("a",)]
    assert (tmp_path / "a").read_text() == "a1"


async def test_the_async_watcher_runs_until_stopped(world: VaultWorld, tmp_path: Path) -> None:
    world.set("a", "a1")
    stop = asyncio.Event()
    settings = FetchSettings(client_kwargs={"connection_verify": str(world.azure.ca_bundle)})

    def on_change(poll: PollResult) -> None:
        stop.set()

    async with aio.Watcher(
        [VaultObject(vault=world.vault, name="a")],
        [DirectorySink(tmp_path)],
        settings=settings,
        interval=3600,
        on_change=on_change,
    ) as watcher:
        await watcher.run(stop)
    assert (tmp_path / "a").read_text() == "a1"
