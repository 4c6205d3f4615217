"""The %%fal_app line: its flags are views of AppConfig, one per plain field, named as errors name them."""

from __future__ import annotations

import pytest

from fal_notebook import capture
from fal_notebook.capture.options import NOT_FLAGS, config_flags, parse_magic_line
from fal_notebook.config import AppConfig
from fal_notebook.errors import ConfigError

pytestmark = pytest.mark.usefixtures("fal_env")

APP = "import fal\n\nclass Demo(fal.App):\n    @fal.endpoint('/')\n    def run(self) -> dict:\n        return {}\n"


def test_every_field_is_a_flag_or_set_elsewhere():
    assert set(config_flags()) | set(NOT_FLAGS) == set(AppConfig.model_fields)


def test_flags_parse_into_config_fields():
    line = parse_magic_line(
        "%%fal_app demo --machine-type GPU-H100 --machine-type GPU-A100 --secret A --secret B --port 9000 "
        '--requirements "numpy==2 rich" --requirements httpx --app-scale-settings --keep-alive 30 --class Demo'
    )
    assert line.name == "demo"
    assert line.options == {
        "machine_type": ["GPU-H100", "GPU-A100"],
        "secrets": ["A", "B"],
        "exposed_port": 9000,
        "requirements": ["numpy==2", "rich", "httpx"],
        "app_scale_settings": True,
        "keep_alive": 30,
        "class_name": "Demo",
    }


def test_keys_beyond_the_first_nineteen_have_flags(tmp_path):
    line = parse_magic_line(
        "demo --regions us-west --regions eu-north --team acme --scaling-delay 5 --deployment-strategy rolling "
        "--skip-retry-conditions timeout --termination-grace-period-seconds 20 --request-start-timeout 2.5"
    )
    project = capture(APP, line.name, dir=tmp_path / "demo", search_dir=tmp_path, **line.options)
    config = project.config
    assert config.regions == ["us-west", "eu-north"] and config.team == "acme" and config.scaling_delay == 5
    assert config.deployment_strategy == "rolling" and config.skip_retry_conditions == ["timeout"]
    assert config.termination_grace_period_seconds == 20 and config.request_start_timeout == 2.5


def test_a_bad_value_names_its_flag(tmp_path):
    line = parse_magic_line("demo --deployment-strategy sideways")
    with pytest.raises(ConfigError, match=r"`deployment_strategy` \(--deployment-strategy\) must be one of"):
        capture(APP, line.name, dir=tmp_path / "demo", search_dir=tmp_path, **line.options)
    with pytest.raises(ConfigError, match="--keep-alive: invalid int value"):
        parse_magic_line("demo --keep-alive soon")
