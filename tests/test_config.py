import re
from pathlib import Path

import pytest

from fal_notebook.config import AppConfig
from fal_notebook.errors import ConfigError

SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "fal-platform.md"


def app(**values):
    return AppConfig.build({"name": "demo", "mode": "app", "class_name": "Demo", **values})


def server(**values):
    return AppConfig.build({"name": "demo", "mode": "server", "exposed_port": 8000, **values})


def test_every_key_of_the_platform_table_is_a_field():
    keys = {
        "python_version",
        "machine_type",
        "num_gpus",
        "min_concurrency",
        "max_concurrency",
        "max_multiplexing",
        "concurrency_buffer",
        "concurrency_buffer_perc",
        "scaling_delay",
        "request_timeout",
        "startup_timeout",
        "keep_alive",
        "termination_grace_period_seconds",
        "regions",
        "secrets",
        "data_mounts",
        "app_files",
        "app_files_ignore",
        "exposed_port",
        "metrics_port",
        "health_check",
        "app_scale_settings",
        "image",
        "auth",
        "deployment_strategy",
        "team",
        "requirements",
    }
    if SPEC.is_file():  # the spec's table, when the shared folder is beside the checkout
        table = SPEC.read_text().split("## 4.")[1].split("## 5.")[0]
        keys |= set(re.findall(r"`([a-z_]+)`", table.split("| key | notes |")[1])) - {
            "ref",
            "python_entry_point",
            "name",
            "true",
            "path",
            "method",
            "dockerfile",
            "build_args",
            "registries",
            "entrypoint",
            "cmd",
            "username",
            "password",
            "start_period_seconds",
            "timeout_seconds",
            "failure_threshold",
            "call_regularly",
            "rolling",
            "recreate",
            "private",
            "public",
            "shared",
            "GET",
        }
    assert keys <= set(AppConfig.model_fields)


def test_machine_types_fal_lists_and_new_ones():
    for known in ("XL", "GPU-RTX4090", "GPU-L40", "GPU-B300"):
        assert app(machine_type=known).warnings == []
    newer = app(machine_type=["GPU-Z9", "XL"])
    assert newer.machine_type == ["GPU-Z9", "XL"] and newer.is_gpu
    assert newer.warnings and "'GPU-Z9' is not among the types fal lists" in newer.warnings[0]


def test_keys_fal_accepts_are_modelled():
    config = app(request_start_timeout=30, private_logs=True, no_scale=True)
    assert config.fal_keys()["request_start_timeout"] == 30 and config.private_logs
    assert server(python_entry_point="server:app").python_entry_point == "server:app"


def test_machine_type_single_and_fallbacks():
    assert app(machine_type="GPU-H100").fal_keys()["machine_type"] == "GPU-H100"
    assert app(machine_type=["GPU-H100", "GPU-A100"]).fal_keys()["machine_type"] == ["GPU-H100", "GPU-A100"]
    assert app(machine_type="GPU-H100").is_gpu and not app(machine_type="M").is_gpu


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"machine_type": "GPU X1!"},
            r"`machine_type.0` \(--machine-type\) must be a machine type name .*got 'GPU X1!'",
        ),
        ({"min_concurrency": 3, "max_concurrency": 1}, r"min_concurrency \(3\) is greater than max_concurrency \(1\)"),
        ({"request_timeout": -5}, r"`request_timeout` \(--request-timeout\) .*greater than 0.*-5"),
        ({"startup_timeout": 0}, r"`startup_timeout`"),
        ({"keep_alive": -1}, r"`keep_alive` \(--keep-alive\)"),
        ({"min_concurrency": -1}, r"`min_concurrency`"),
        ({"regions": ["mars"]}, r"`regions.0` .*'us-west'"),
        ({"auth": "everyone"}, r"`auth` \(--auth\) must be one of 'private', 'public' or 'shared'"),
        ({"secrets": ["MY-KEY"]}, r"`secrets.0` \(--secret\)"),
        ({"num_gpus": 2}, r"num_gpus \(--num-gpus\) needs a GPU machine_type"),
        ({"exposed_port": 8000}, r"exposed_port \(--port\) is for Direct Server Mode only"),
        ({"python_version": "3"}, r"`python_version`"),
        ({"data_mounts": ["/tmp"]}, r"`data_mounts.0`"),
        ({"skip_retry_conditions": ["sometimes"]}, r"`skip_retry_conditions.0`"),
        ({"bogus": 1}, r"`bogus` is not a fal configuration key"),
    ],
)
def test_bad_values_name_the_key(values, expected):
    with pytest.raises(ConfigError, match=expected):
        app(**values)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_ports_are_1_to_65535(port):
    with pytest.raises(ConfigError, match=r"`exposed_port` \(--port\)"):
        server(exposed_port=port)


@pytest.mark.parametrize("name", ["My App", "../evil", "a/b", "-x", "", "UPPER", "x" * 64])
def test_app_names_follow_fal_rules(name):
    with pytest.raises(ConfigError, match=r"`name` \(the NAME argument\) must be lowercase letters"):
        AppConfig.build({"name": name, "mode": "app", "class_name": "A"})


def test_server_mode_needs_a_port_and_keeps_app_files_out_of_the_toml():
    with pytest.raises(ConfigError, match="needs the port the server listens on"):
        AppConfig.build({"name": "s", "mode": "server"})
    # fal refuses app_files beside a container image: a server's files go into its image instead
    assert "app_files" not in server(app_files=["data.txt"]).fal_keys()
    app = AppConfig.build({"name": "a", "mode": "app", "class_name": "A", "app_files": ["data.txt"]})
    assert app.fal_keys()["app_files"] == ["data.txt"]


def test_health_check_and_image_tables():
    cfg = server(health_check={"path": "/healthz", "timeout_seconds": 5}, image={"dockerfile": "Dockerfile"})
    assert cfg.fal_keys()["health_check"] == {"path": "/healthz", "timeout_seconds": 5}
    with pytest.raises(ConfigError, match="exactly one of 'dockerfile' or 'image'"):
        server(image={"dockerfile": "Dockerfile", "image": "x:1"})
    with pytest.raises(ConfigError, match="health_check.path"):
        server(health_check={"path": "healthz"})


def test_port_and_python_version_views():
    assert app().port == 8080
    assert server(exposed_port=9000).port == 9000
    assert re.fullmatch(r"3\.\d+", app().effective_python_version)


def _captured_with(tmp_path, lines: str):
    import fal_notebook
    from fal_notebook.generate.project import AppProject

    project = fal_notebook.capture("import fal\nclass Demo(fal.App):\n    pass\n", "demo", out_dir=tmp_path)
    toml = project.path / "pyproject.toml"
    toml.write_text(toml.read_text().replace("[tool.fal.apps.demo]\n", "[tool.fal.apps.demo]\n" + lines))
    return lambda: AppProject.load(project.path)


def test_a_typo_in_the_toml_is_refused_naming_the_nearest_key(tmp_path, fal_env):
    load = _captured_with(tmp_path, "keep_alvie = 10\nmin_concurency = 1\n")
    with pytest.raises(ConfigError) as refused:
        load()
    message = str(refused.value)
    assert "Found unexpected keys in [tool.fal.apps.demo]" in message
    assert "`keep_alvie` (did you mean `keep_alive`?)" in message
    assert "`min_concurency` (did you mean `min_concurrency`?)" in message


def test_keys_fal_accepts_and_local_runners_ignore_are_named_in_notes(tmp_path, fal_env):
    load = _captured_with(tmp_path, 'private_logs = true\nrequirements = ["numpy"]\nmachine_type = "GPU-Z9"\n')
    project = load()
    assert project.config.private_logs is True
    notes = "\n".join(project.notes)
    assert "private_logs applies on fal only" in notes and "requirements applies on fal only" in notes
    assert "'GPU-Z9' is not among the types fal lists" in notes
