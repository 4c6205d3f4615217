"""Credentials are found where fal finds them, in fal's order, and never shown."""

from __future__ import annotations

import os
import stat
import sys
import types

import pytest
from fal.auth import key_credentials

from fal_notebook import credentials
from fal_notebook.errors import ConfigError
from fal_notebook.secrets import Redactor, redact

pytestmark = pytest.mark.fal_sdk

FAKE_KEY_ID = "fnbkeyid-0001"
FAKE_KEY_SECRET = "fnb-secret-Q7x9-DO-NOT-LEAK-5521"
FAKE_KEY = f"{FAKE_KEY_ID}:{FAKE_KEY_SECRET}"


def write_config(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def same_as_fal(found):
    """fal's own lookup gives the same key."""
    expected = key_credentials()
    assert (found.key_id, found.key_secret) == expected if found else expected is None


def test_nothing_configured(fal_env):
    assert credentials.find_credentials() is None
    assert credentials.fal_key() is None
    assert not credentials.logged_in_as_user()
    same_as_fal(None)


def test_fal_key_environment_variable(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    found = credentials.find_credentials()
    assert (found.key_id, found.key_secret, found.source) == (
        FAKE_KEY_ID,
        FAKE_KEY_SECRET,
        "the FAL_KEY environment variable",
    )
    assert credentials.fal_key() == FAKE_KEY
    same_as_fal(found)


def test_profile_key_in_fals_config(fal_env):
    write_config(
        fal_env / ".fal" / "config.toml",
        f'[__internal__]\nprofile = "work"\n\n[work]\nkey = "{FAKE_KEY}"\n\n[other]\nkey = "x:y"\n',
    )
    found = credentials.find_credentials()
    assert found.key == FAKE_KEY and "profile 'work'" in found.source
    same_as_fal(found)


def test_fal_profile_and_fal_config_path_move_the_lookup(fal_env, tmp_path, monkeypatch):
    config = write_config(
        tmp_path / "elsewhere.toml",
        f'[__internal__]\nprofile = "work"\n\n[work]\nkey = "a-id:a-secret"\n\n[ci]\nkey = "{FAKE_KEY}"\n',
    )
    monkeypatch.setenv("FAL_CONFIG_PATH", str(config))
    assert credentials.fal_key() == "a-id:a-secret"
    monkeypatch.setenv("FAL_PROFILE", "ci")
    found = credentials.find_credentials()
    assert found.key == FAKE_KEY
    same_as_fal(found)
    monkeypatch.setenv("FAL_PROFILE", "missing")  # fal ignores a profile that does not exist
    assert credentials.find_credentials() is None
    same_as_fal(None)


def test_fal_key_wins_over_profile_and_profile_over_key_id_and_secret(fal_env, monkeypatch):
    write_config(
        fal_env / ".fal" / "config.toml", '[__internal__]\nprofile = "p"\n\n[p]\nkey = "profile-id:profile-secret"\n'
    )
    monkeypatch.setenv("FAL_KEY_ID", "split-id")
    monkeypatch.setenv("FAL_KEY_SECRET", "split-secret")
    assert credentials.fal_key() == "profile-id:profile-secret"
    same_as_fal(credentials.find_credentials())
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    assert credentials.fal_key() == FAKE_KEY
    same_as_fal(credentials.find_credentials())


def test_key_id_and_secret(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY_ID", FAKE_KEY_ID)
    monkeypatch.setenv("FAL_KEY_SECRET", FAKE_KEY_SECRET)
    found = credentials.find_credentials()
    assert found.key == FAKE_KEY and found.source == "FAL_KEY_ID and FAL_KEY_SECRET"
    same_as_fal(found)


def test_forcing_user_auth_ignores_keys(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    monkeypatch.setenv("FAL_FORCE_AUTH_BY_USER", "1")
    assert credentials.find_credentials() is None
    same_as_fal(None)


def test_colab_secret_comes_after_the_profile_and_before_key_id(fal_env, monkeypatch):
    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=lambda name: f" {FAKE_KEY}\n" if name == "FAL_KEY" else None)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr("IPython.get_ipython", lambda: "<google.colab._shell.Shell object>")
    monkeypatch.setenv("FAL_KEY_ID", "split-id")
    monkeypatch.setenv("FAL_KEY_SECRET", "split-secret")
    found = credentials.find_credentials()
    assert found.key == FAKE_KEY and found.source == "the Colab secret FAL_KEY"
    write_config(
        fal_env / ".fal" / "config.toml", '[__internal__]\nprofile = "p"\n\n[p]\nkey = "profile-id:profile-secret"\n'
    )
    assert credentials.fal_key() == "profile-id:profile-secret"


def test_malformed_key_is_a_clear_error(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "only-one-part-of-the-key")
    with pytest.raises(
        ConfigError, match=r"FAL_KEY environment variable is not in the form <key_id>:<key_secret>"
    ) as err:
        credentials.find_credentials()
    assert "only-one-part-of-the-key" not in str(err.value)


def test_user_login_token_is_seen(fal_env, tmp_path, monkeypatch):
    (fal_env / ".fal").mkdir()
    (fal_env / ".fal" / "auth0_token").write_text("refresh-token\n")
    assert credentials.logged_in_as_user()
    monkeypatch.setenv("FAL_HOME_DIR", str(tmp_path / "other"))
    assert not credentials.logged_in_as_user()


def test_repr_and_str_never_show_the_secret(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    found = credentials.find_credentials()
    for shown in (repr(found), str(found), f"{found!r} {found}"):
        assert FAKE_KEY_SECRET not in shown and FAKE_KEY_ID not in shown
    assert "fnbk…" in str(found)


def test_login_keeps_the_key_for_the_session(fal_env):
    found = credentials.login(f"  {FAKE_KEY}  ")
    assert os.environ["FAL_KEY"] == FAKE_KEY  # subprocesses (fal) and the client see it
    assert credentials.fal_key() == FAKE_KEY
    assert found.source == "this kernel session (%fal_login)"
    assert not (fal_env / ".fal" / "config.toml").exists()


def test_login_refuses_a_malformed_key_and_keeps_the_old_one(fal_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", FAKE_KEY)
    with pytest.raises(ConfigError, match="the key you entered"):
        credentials.login("no-colon-here")
    assert os.environ["FAL_KEY"] == FAKE_KEY


def test_login_can_save_with_fals_profile_mechanism(fal_env, monkeypatch):
    found = credentials.login(FAKE_KEY, save=True)
    config = fal_env / ".fal" / "config.toml"
    assert found.source == "fal profile 'default'"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    monkeypatch.delenv("FAL_KEY")  # a new session: fal itself finds the saved key
    assert key_credentials() == (FAKE_KEY_ID, FAKE_KEY_SECRET)
    assert credentials.fal_key() == FAKE_KEY


def test_saving_into_an_existing_profile_keeps_its_other_settings(fal_env, monkeypatch):
    write_config(
        fal_env / ".fal" / "config.toml",
        '[__internal__]\nprofile = "work"\n\n[work]\nhost = "api.example"\nkey = "old:old"\n',
    )
    credentials.login(FAKE_KEY, save=True)
    monkeypatch.delenv("FAL_KEY")
    text = (fal_env / ".fal" / "config.toml").read_text()
    assert 'host = "api.example"' in text and "old:old" not in text
    assert credentials.find_credentials().source.startswith("fal profile 'work'")


def test_redact_covers_a_key_that_is_not_in_the_environment(fal_env):
    write_config(fal_env / ".fal" / "config.toml", f'[__internal__]\nprofile = "p"\n\n[p]\nkey = "{FAKE_KEY}"\n')
    text = f"header Authorization: Key {FAKE_KEY}; secret {FAKE_KEY_SECRET}; id {FAKE_KEY_ID}"
    cleaned = redact(text)
    assert FAKE_KEY_SECRET not in cleaned and FAKE_KEY_ID not in cleaned


def test_a_redactor_made_once_covers_the_key_and_the_apps_secrets(fal_env, monkeypatch):
    write_config(fal_env / ".fal" / "config.toml", f'[__internal__]\nprofile = "p"\n\n[p]\nkey = "{FAKE_KEY}"\n')
    monkeypatch.setenv("SERVICE_TOKEN", "token-value-123")
    redactor = Redactor(["app-secret", ""])  # an app's secret values (an empty one replaces nothing)
    line = f"key {FAKE_KEY}, token token-value-123, app-secret, and plain words"
    assert redactor(line) == "key ***, token ***, ***, and plain words"
    assert Redactor()("nothing secret") == "nothing secret"
