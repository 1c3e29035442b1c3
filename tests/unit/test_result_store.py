"""Both result stores behind one interface: put, read, delete, expiry, bad ids and names, full and unreachable."""

from __future__ import annotations

import errno
import time
from pathlib import Path

import grpc
import pytest

from gateway.errors import InsufficientStorage, NotFound, Unavailable
from gateway.settings import Settings
from gateway.store import FolderStore, RedisStore, ResultStore, open_store
from gateway.store.redis import KEY_PREFIX
from tests.helpers import free_port
from tests.redis_server import RedisServer

PNG = b"\x89PNG result bytes"


@pytest.fixture(params=["folder", "redis"])
def store(request, tmp_path):
    if request.param == "folder":
        yield FolderStore(tmp_path / "results", ttl_seconds=60)
    else:
        redis_store = RedisStore(request.getfixturevalue("redis_server").url, ttl_seconds=60)
        yield redis_store
        redis_store.close()


def test_put_read_delete(store: ResultStore):
    result_id = store.new_id()
    store.put(result_id, "0-photo.zhang-eccv16.png", PNG, store.expires_at())
    store.put(result_id, "0-photo.bigcolor.jpg", b"jpeg", store.expires_at())
    assert store.read(result_id, "0-photo.zhang-eccv16.png") == PNG
    assert store.read(result_id, "0-photo.bigcolor.jpg") == b"jpeg"
    with pytest.raises(NotFound):
        store.read(result_id, "0-photo.other.png")
    with pytest.raises(NotFound):
        store.read(store.new_id(), "0-photo.zhang-eccv16.png")
    store.delete(result_id)
    for name in ("0-photo.zhang-eccv16.png", "0-photo.bigcolor.jpg"):
        with pytest.raises(NotFound, match="colourise the photo again"):
            store.read(result_id, name)
    with pytest.raises(NotFound):
        store.delete(result_id)
    assert store.reachable()


def test_results_expire(store: ResultStore):
    result_id = store.new_id()
    store.put(result_id, "a.png", PNG, time.time() + 0.3)
    assert store.read(result_id, "a.png") == PNG
    time.sleep(0.5)
    with pytest.raises(NotFound):
        store.read(result_id, "a.png")
    already_gone = store.new_id()
    store.put(already_gone, "a.png", PNG, time.time() - 1)
    with pytest.raises(NotFound):
        store.read(already_gone, "a.png")


def test_expiry_is_the_ttl(store: ResultStore):
    store.ttl = 120
    assert abs(store.expires_at() - (time.time() + 120)) < 1


def test_ids_are_unguessable():
    ids = {ResultStore.new_id() for _ in range(1000)}
    assert len(ids) == 1000 and {len(i) for i in ids} == {32}


@pytest.mark.parametrize("bad_id", ["", "short", "a" * 31, "a" * 33, "../" + "a" * 29, "a" * 31 + ".", "a" * 31 + "/"])
def test_bad_ids_name_no_result(store: ResultStore, bad_id: str):
    with pytest.raises(NotFound):
        store.read(bad_id, "a.png")
    with pytest.raises(NotFound):
        store.delete(bad_id)
    with pytest.raises(NotFound):
        store.put(bad_id, "a.png", PNG, store.expires_at())


@pytest.mark.parametrize("bad_name", ["", ".expires", "../a.png", "a/b.png", "-a.png", "a" * 202, "a\nb"])
def test_bad_names_name_no_file(store: ResultStore, bad_name: str):
    result_id = store.new_id()
    store.put(result_id, "a.png", PNG, store.expires_at())
    with pytest.raises(NotFound):
        store.read(result_id, bad_name)
    with pytest.raises(NotFound):
        store.put(result_id, bad_name, PNG, store.expires_at())
    assert store.read(result_id, "a.png") == PNG


def test_the_settings_choose_the_store(tmp_path):
    folder = open_store(Settings(result_dir=tmp_path / "r"))
    assert isinstance(folder, FolderStore) and folder.directory == tmp_path / "r" and folder.directory.is_dir()
    redis_store = open_store(Settings(result_store_url="redis://127.0.0.1:1/0", result_ttl_seconds=5))
    assert isinstance(redis_store, RedisStore) and redis_store.ttl == 5
    assert str(redis_store) == "Redis at 127.0.0.1:1, database 0"
    default = Settings.model_fields["result_dir"].default
    assert default == Path(".run/results"), "a folder that outlives the process, not a temporary one"
    with pytest.raises(ValueError, match="pattern"):
        Settings(result_store_url="http://127.0.0.1:6379")


# --- the folder store ----------------------------------------------------------------------------------


def test_folder_results_survive_a_new_store_on_the_same_folder(tmp_path):
    first = FolderStore(tmp_path / "results", ttl_seconds=60)
    result_id = first.new_id()
    first.put(result_id, "a.png", PNG, first.expires_at())
    assert FolderStore(tmp_path / "results", ttl_seconds=60).read(result_id, "a.png") == PNG


def test_the_sweeper_deletes_expired_results(tmp_path):
    store = FolderStore(tmp_path, ttl_seconds=60)
    kept, expired = store.new_id(), store.new_id()
    store.put(kept, "a.png", PNG, store.expires_at())
    store.put(expired, "a.png", PNG, time.time() - 1)
    assert store.sweep() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [kept]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_insufficient_storage(tmp_path, monkeypatch, code):
    store = FolderStore(tmp_path, ttl_seconds=600)
    result_id = store.new_id()
    write_bytes = Path.write_bytes

    def half_written(path: Path, data: bytes) -> int:
        write_bytes(path, data[:3])
        raise OSError(code, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_written)
    with pytest.raises(InsufficientStorage) as caught:
        store.put(result_id, "a.png", PNG, store.expires_at())
    error = caught.value
    assert (error.http_status, error.grpc_status, error.code) == (507, grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                                  "result_store_full")
    assert "full" in error.message and "10 minutes" in error.message
    assert not (tmp_path / result_id / "a.png").exists(), "no half-written result to download"


def test_other_disk_errors_are_not_called_full(tmp_path, monkeypatch):
    store = FolderStore(tmp_path, ttl_seconds=600)

    def denied(path: Path, data: bytes) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(PermissionError):
        store.put(store.new_id(), "a.png", PNG, store.expires_at())


def test_a_missing_folder_is_not_ready(tmp_path):
    store = FolderStore(tmp_path / "results", ttl_seconds=60)
    assert store.reachable()
    (tmp_path / "results").rmdir()
    assert not store.reachable()


# --- the Redis store -----------------------------------------------------------------------------------


def test_a_result_is_one_hash_that_redis_expires(redis_server):
    store = RedisStore(redis_server.url, ttl_seconds=60)
    result_id = store.new_id()
    expires_at = time.time() + 0.5
    store.put(result_id, "a.png", PNG, expires_at)
    store.put(result_id, "b.png", b"b", expires_at)
    key = KEY_PREFIX + result_id
    assert redis_server.client.hgetall(key) == {b"a.png": PNG, b"b.png": b"b"}
    assert abs(redis_server.client.pexpiretime(key) / 1000 - expires_at) < 0.01
    time.sleep(1.0)  # Redis's own expiry cycle deletes it, without anyone reading it
    assert redis_server.client.dbsize() == 0
    store.close()


def test_a_full_redis_is_insufficient_storage(tmp_path):
    with RedisServer(tmp_path, maxmemory="2mb") as server:
        server.fill()
        store = RedisStore(server.url, ttl_seconds=600)
        result_id = store.new_id()
        with pytest.raises(InsufficientStorage, match="full"):
            store.put(result_id, "a.png", PNG, store.expires_at())
        assert store.reachable(), "full is not down"
        with pytest.raises(NotFound):
            store.read(result_id, "a.png")
        server.client.flushall()
        store.put(result_id, "a.png", PNG, store.expires_at())
        assert store.read(result_id, "a.png") == PNG
        store.close()


def test_an_unreachable_redis_is_unavailable(redis_server):
    store = RedisStore(redis_server.url, ttl_seconds=60)
    result_id = store.new_id()
    store.put(result_id, "a.png", PNG, store.expires_at())
    redis_server.stop()
    started = time.monotonic()
    for call in (
        lambda: store.put(result_id, "b.png", PNG, store.expires_at()),
        lambda: store.read(result_id, "a.png"),
        lambda: store.delete(result_id),
    ):
        with pytest.raises(Unavailable, match="does not answer") as caught:
            call()
        assert caught.value.http_status == 503
    assert time.monotonic() - started < 5, "a down Redis answers quickly, it does not hang requests"
    assert not store.reachable()
    redis_server.start()  # a restarted Redis: reconnects by itself, the old results are gone
    assert store.reachable()
    with pytest.raises(NotFound):
        store.read(result_id, "a.png")
    store.close()


def test_nothing_listening_is_unavailable():
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", ttl_seconds=60)
    assert not store.reachable()
    with pytest.raises(Unavailable):
        store.put(store.new_id(), "a.png", PNG, store.expires_at())
