"""What fal's platform gives a runner, locally (gateway/platform_env.py): the store's seams and the
persistent caches, and a deploy-time refusal for an app that writes the literal /data where it cannot."""

from __future__ import annotations

import os

import pytest

from fal_notebook.errors import DeployError
from fal_notebook.gateway import platform_env
from fal_notebook.gateway.paths import ensure_key, runner_key


def test_local_runners_get_the_store_and_persistent_caches_never_a_fal_key(fal_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "user-id:user-secret")
    data = platform_env.data_dir()
    env = platform_env.local_environment(
        8766, tmp_path / "bundle.pem", {"TORCH_HOME": "/opt/my-torch-cache"}, str(data)
    )
    assert "TORCH_HOME" not in env  # the user's own cache stays theirs
    assert env["FAL_REST_HOST"] == "127.0.0.1:8766" and env["SSL_CERT_FILE"] == str(tmp_path / "bundle.pem")
    assert env["FAL_KEY"] == runner_key(ensure_key()) and "user-secret" not in env.values()
    assert env["HF_HOME"] == str(data / ".cache" / "huggingface") and env["FAL_NOTEBOOK_DATA"] == str(data)
    assert data == tmp_path / "home" / "data" and oct(data.stat().st_mode & 0o777) == "0o700"
    sandboxed = platform_env.local_environment(8766, tmp_path / "bundle.pem", {}, "/data")  # its private /data
    assert sandboxed["HF_HOME"] == "/data/.cache/huggingface" and sandboxed["FAL_NOTEBOOK_DATA"] == "/data"


def test_docker_runners_get_fals_uploader_socket_and_one_volume_per_user(fal_env):
    env, mounts = platform_env.docker_environment(), platform_env.docker_mounts()
    assert env["FAL_USE_LOCAL_UPLOADER"] == "1" and env["FAL_API_SOCKET"] == "/run/fal/api.sock"
    assert env["FAL_REST_HOST"] == "127.0.0.1:9" and env["HF_HOME"] == "/data/.cache/huggingface"
    assert f"type=volume,source={platform_env.data_volume()},target=/data" in mounts
    assert any(m.endswith("store.sock,target=/run/fal/api.sock") for m in mounts)


@pytest.mark.skipif(os.access("/data", os.W_OK), reason="this machine has a writable /data")
def test_an_app_writing_the_literal_data_path_is_refused_at_deploy_saying_what_to_do():
    platform_env.check_data_literal("open(os.environ['HF_HOME'] + '/w.bin', 'wb')", "app.py")  # fine
    with pytest.raises(DeployError, match=r"app.py uses the path /data.*--target docker.*FAL_NOTEBOOK_DATA"):
        platform_env.check_data_literal('Path("/data/weights.bin").write_bytes(b"")', "app.py")
