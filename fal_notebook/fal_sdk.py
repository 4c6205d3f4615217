"""What fal-notebook uses of fal's SDK beyond what fal documents, fenced in one module.

fal promises its CLI and ``fal.App``. fal-notebook also relies on these internals, tested with the
fal versions in ``TESTED_FAL`` (pyproject.toml pins the same range):

- ``fal.cli._utils.get_app_data_from_toml``: fal's own check of ``[tool.fal.apps.<name>]``;
- ``fal.api.deploy.execute_prepared_deployment``: wrapped while ``fal deploy`` runs, to print the
  URLs of fal's answer (``fal deploy --output json`` prints only the revision);
- ``fal.config.Config``'s ``_config`` and ``_profile``: a profile made as ``fal profile create`` does;
- the texts of fal's messages and errors, which ``backends/fal_errors.py`` explains.

``check_version`` fails with a clear message when the installed fal is outside the tested range,
and the programs run by fal's interpreter say which internal they miss rather than a traceback.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import FalNotebookError

#: The fal versions fal-notebook is tested with (CI also runs the fal-facing tests with the newest fal).
TESTED_FAL = ">=1.83,<2"


def fal_version() -> str | None:
    """The installed fal's version, None when fal is not installed."""
    try:
        return metadata.version("fal")
    except metadata.PackageNotFoundError:
        return None


def _install_hint() -> str:
    return f"pip install 'fal{TESTED_FAL}' (then restart the kernel), or upgrade fal-notebook"


def check_version(version: str | None = None) -> None:
    """Fail unless the installed fal (or ``version``) is one fal-notebook is tested with."""
    version = version or fal_version()
    if version is None:
        raise FalNotebookError(f"fal is not installed, and fal-notebook needs it: {_install_hint()}.")
    try:
        tested = Version(version) in SpecifierSet(TESTED_FAL)
    except InvalidVersion:
        tested = False
    if not tested:
        raise FalNotebookError(
            f"fal-notebook is tested with fal {TESTED_FAL}, and this environment has fal {version}: "
            f"its internals that fal-notebook uses may differ. Nothing was done. {_install_hint()}."
        )


# -- programs run by fal's interpreter ----------------------------------------------------------
#: A program exits with MISSING_EXIT, after MISSING_MARKER + the internal's name, when fal lacks it.
MISSING_EXIT = 3
MISSING_MARKER = "fal-notebook: this fal has no "

#: ``python -c`` program, cwd = the project folder: fal's validator of ``pyproject.toml`` as ``fal
#: deploy <name>`` calls it (argv: the app's name); exits with the reason when fal refuses it.
VALIDATE_PROGRAM = f"""
import sys
try:
    from fal.cli._utils import get_app_data_from_toml
except ImportError:
    print({MISSING_MARKER!r} + "fal.cli._utils.get_app_data_from_toml", file=sys.stderr)
    sys.exit({MISSING_EXIT})
try:
    get_app_data_from_toml(sys.argv[1])
except (ValueError, FileNotFoundError) as exc:
    sys.exit(str(exc))
"""

#: Before the JSON of the URLs that fal's deploy answered, on a line of its own.
RESULT_MARKER = "fal-notebook-deploy-result: "

#: ``python -c`` program: fal's CLI (``fal <argv>``), printing the deploy result on one line.
DEPLOY_PROGRAM = f"""
import json, sys
try:
    import fal.api.deploy as deploy_api
    execute = deploy_api.execute_prepared_deployment
except (ImportError, AttributeError):
    print({MISSING_MARKER!r} + "fal.api.deploy.execute_prepared_deployment", flush=True)
    sys.exit({MISSING_EXIT})
def execute_and_report(*args, **kwargs):
    result = execute(*args, **kwargs)
    fields = ("revision", "app_name", "urls", "log_url", "auth_mode")
    report = {{name: getattr(result, name, None) for name in fields}}
    print({RESULT_MARKER!r} + json.dumps(report), flush=True)
    return result
deploy_api.execute_prepared_deployment = execute_and_report  # before the CLI imports it
from fal.cli.main import main
sys.exit(main())
"""


def missing_internal(output: str) -> str | None:
    """The internal a program said fal lacks, if it did."""
    for line in output.splitlines():
        if line.startswith(MISSING_MARKER):
            return line[len(MISSING_MARKER) :].strip()
    return None


def missing_internal_error(name: str) -> FalNotebookError:
    return FalNotebookError(
        f"The installed fal ({fal_version()}) has no {name}, which fal-notebook uses (it is tested with fal "
        f"{TESTED_FAL}). Nothing was deployed. {_install_hint()}."
    )


# -- fal's profiles -----------------------------------------------------------------------------
def save_profile_key(key: str, profile: str | None, default: str) -> str:
    """Store ``key`` in a fal profile as ``fal profile create/set`` and ``fal profile key`` do:
    ``profile``, else the active one, else ``default``; the file stays private to the user.
    Returns the profile's name."""
    check_version()
    from fal.config import Config

    config = Config()
    name = profile or config.profile or default
    path = Path(config.config_path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600)  # private before the key is written (fal keeps an existing file's mode)
    with config.edit():
        if name not in config.profiles():
            config._config[name] = {}  # what `fal profile create` does; Config has no public call
        if config.profile is None:
            config.set_internal("profile", name)
        config._profile = name
        config.set("key", key)
    path.chmod(0o600)
    return name


# -- fal's messages (fal 1.83: fal.exceptions.auth, fal.api.api, fal.cli.deploy_check, fal.logging) --
#: How fal's CLI marks the error it ends with (``✘ message``, indented continuation lines).
ERROR_PREFIXES = ("✘ ", "x ")
BUILD_HEADER = "Building environment..."
BUILD_DONE = "Build complete"
RUNTIME_HEADERS = ("Setting up runtime...", "Running...")
NOT_AUTHENTICATED = "You must be authenticated"
CONFIRMATION = "requires interactive input"
PYTHON_MISMATCH = re.compile(r"differs from the app's python_version|is not available in the app environment")
UNREACHABLE = re.compile(
    r"Could not reach fal host|Name or service not known|Temporary failure in name resolution|"
    r"All connection attempts failed|Connection refused|Network is unreachable|ConnectError|ConnectTimeout",
    re.IGNORECASE,
)
KEY_REJECTED = re.compile(
    r"No user found for Key|UNAUTHENTICATED|PERMISSION_DENIED|invalid (api )?key|invalid credentials|"
    r"not authori[sz]ed|unauthori[sz]ed|forbidden|Invalid key format",
    re.IGNORECASE,
)
#: fal's log prefix: ``2026-11-28 12:00:00.000 [info     ] ``.
LOG_PREFIX = re.compile(r"^\s*\d{4}-\d\d-\d\d[ T][\d:.]+\s+\[\s*\w+\s*\]\s*")


# -- @fal.function objects (fal 1.83: fal.api.api.IsolatedFunction.options) -----------------------
def function_options(obj: object) -> dict[str, object]:
    """What a live ``@fal.function(...)`` object was given, as the decorator's keywords: its host keys
    (``keep_alive``, ``machine_type``...), ``exposed_port``, and ``dockerfile`` (the text of a
    ``ContainerImage.from_dockerfile_str`` image); {} for anything else."""
    options = getattr(obj, "options", None)
    host, gateway, environment = (getattr(options, part, None) for part in ("host", "gateway", "environment"))
    if not all(isinstance(part, dict) for part in (host, gateway, environment)):
        return {}
    assert isinstance(host, dict) and isinstance(gateway, dict) and isinstance(environment, dict)
    found: dict[str, object] = {**host}
    if "exposed_port" in gateway:
        found["exposed_port"] = gateway["exposed_port"]
    image = environment.get("image")
    text = image.get("dockerfile_str") if isinstance(image, dict) else getattr(image, "dockerfile_str", None)
    if isinstance(text, str):
        found["dockerfile"] = text
    return found
