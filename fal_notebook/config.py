"""AppConfig: the one description of an app's configuration, validated once.

Every key of fal's ``[tool.fal.apps.<name>]`` table is a field here under the same name; the
magic's flags, the CLI, the panel's form and the generated TOML are views of this model. fal
passes many of these values through unchecked, so they are checked here, where the error can name
the key while the user is still in the notebook.
"""

from __future__ import annotations

import difflib
import re
import sys
from typing import Annotated, Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .secrets import redact

#: Machine types fal lists today. fal's list grows, so another well-formed name is accepted (fal
#: decides at deploy) with a warning (``AppConfig.warnings``); a GPU type's name starts with ``GPU``.
CPU_MACHINE_TYPES = ("XS", "S", "M", "L", "XL")
GPU_MACHINE_TYPES = (
    "GPU-A6000",
    "GPU-A100",
    "GPU-L40",
    "GPU-RTX4090",
    "GPU-RTX5090",
    "GPU-H100",
    "GPU-H200",
    "GPU-B200",
    "GPU-B300",
)
MachineType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Region = Literal["us-west", "us-central", "us-east", "eu-north", "eu-west"]
AuthMode = Literal["private", "public", "shared"]
#: fal's auth mode for an app that sets none.
DEFAULT_AUTH: AuthMode = "private"
RetryCondition = Literal["timeout", "server_error", "connection_error"]
Mode = Literal["app", "server"]

APP_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62})$")


def auth_mode(auth: AuthMode | None) -> AuthMode:
    """An app's auth mode, fal's default for none."""
    return auth or DEFAULT_AUTH


def is_public(auth: str | None) -> bool:
    """Whether anyone may call an app with auth mode ``auth``, without a key (only ``public``)."""
    return auth == "public"


AppName = Annotated[str, StringConstraints(pattern=APP_NAME_RE.pattern)]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
#: The largest count or number of seconds a key takes (fal's API stores them as 32-bit integers).
MAX_INT = 2**31 - 1
Port = Annotated[int, Field(ge=1, le=65535)]
Seconds = Annotated[int, Field(gt=0, le=MAX_INT)]
Count = Annotated[int, Field(ge=0, le=MAX_INT)]
#: A Docker image reference (``[host[:port]/]path[:tag][@digest]``): it becomes a Dockerfile's FROM line.
IMAGE_REF_RE = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

#: Port a fal.App listens on inside a runner, and its metrics port (fal's fixed values).
FAL_APP_PORT = 8080
FAL_METRICS_PORT = 9090
DEFAULT_SERVER_PORT = 8000

# Fields that describe the project rather than a fal TOML key.
PROJECT_FIELDS = ("name", "mode", "class_name", "entry", "cmd", "base_image", "base_dockerfile", "requirements")
#: Every key fal's ``fal deploy`` accepts in ``[tool.fal.apps.<name>]`` (fal 1.83,
#: ``fal.cli._utils.get_app_data_from_toml``); it refuses any other.
FAL_TOML_KEYS = frozenset(
    {
        "ref",
        "python_entry_point",
        "name",
        "auth",
        "deployment_strategy",
        "team",
        "requirements",
        "requirements_context_dir",
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
        "request_start_timeout",
        "startup_timeout",
        "keep_alive",
        "private_logs",
        "regions",
        "app_files",
        "app_files_ignore",
        "app_files_context_dir",
        "exposed_port",
        "metrics_port",
        "skip_retry_conditions",
        "retry_config",
        "termination_grace_period_seconds",
        "secrets",
        "data_mounts",
        "health_check",
        "image",
        "no_scale",
        "app_scale_settings",
        "_scheduler",
        "_scheduler_options",
    }
)
#: Keys fal accepts that the local gateway does not apply, and why (named in a note at deploy).
LOCAL_IGNORED = {
    "private_logs": "logs are the user's own on the local gateway",
    "python_entry_point": "local runners serve the captured app.py/server.py",
    "requirements": "local runners install requirements.txt",
    "requirements_context_dir": "local runners install requirements.txt",
    "app_files_context_dir": "local runners run from the project folder",
    "no_scale": "deprecated by fal (use app_scale_settings); local scaling follows this file on every deploy",
    "_scheduler": "fal's scheduler is not used locally",
    "_scheduler_options": "fal's scheduler is not used locally",
}
# Command-line spelling of fields whose flag differs from "--" + name with dashes.
FLAG_NAMES = {
    "name": "the NAME argument",
    "exposed_port": "--port",
    "secrets": "--secret",
    "class_name": "--class",
    "auth": "--auth",
}


def kernel_python_version() -> str:
    """The running interpreter's ``major.minor`` (fal needs the same minor version remotely)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def reads_port_variable(cmd: str) -> bool:
    """Whether a server's command takes its port from ``$PORT`` (so it can listen where it is told)."""
    return "$PORT" in cmd or "${PORT}" in cmd


def flag_for(field: str) -> str:
    """The magic's / CLI's flag for a config field."""
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HealthCheck(_Strict):
    """``health_check`` table: how fal probes a runner."""

    path: Annotated[str, StringConstraints(pattern=r"^/")]
    start_period_seconds: Count | None = None
    timeout_seconds: Seconds | None = None
    failure_threshold: Annotated[int, Field(ge=1)] | None = None
    call_regularly: bool | None = None
    method: Literal["GET", "POST", "HEAD"] | None = None


class RetryEntry(_Strict):
    retries: Count


class ImageConfig(_Strict):
    """``image`` table (Direct Server Mode). Registry credentials are deliberately not modelled:
    they would end up in a generated file."""

    dockerfile: str | None = None
    image: str | None = None
    build_args: dict[str, str] | None = None
    secrets: list[EnvVarName] | None = None
    entrypoint: list[str] | str | None = None
    cmd: list[str] | str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageConfig:
        if (self.dockerfile is None) == (self.image is None):
            raise ValueError("image needs exactly one of 'dockerfile' or 'image'")
        if self.image is not None and (self.build_args or self.secrets):
            raise ValueError("image.build_args and image.secrets need image.dockerfile")
        return self


class AppConfig(_Strict):
    """Everything that configures one app: the project fields and every fal TOML key."""

    # -- the project -------------------------------------------------------------------------
    name: AppName
    mode: Mode
    class_name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*$")] | None = None
    entry: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]\w*$")] = "app"
    cmd: Annotated[str, StringConstraints(min_length=1)] | None = None
    base_image: Annotated[str, StringConstraints(max_length=255)] | None = None
    #: A Dockerfile the generated one starts from (the ``image`` of a cell's ``@fal.function``).
    base_dockerfile: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    requirements: list[Annotated[str, StringConstraints(min_length=1, max_length=1000)]] = []

    # -- fal keys (same names as in [tool.fal.apps.<name>]) ------------------------------------
    auth: AuthMode | None = None
    deployment_strategy: Literal["rolling", "recreate"] | None = None
    team: str | None = None
    python_version: Annotated[str, StringConstraints(pattern=r"^3\.\d{1,2}$")] | None = None
    machine_type: list[MachineType] | None = None
    num_gpus: Annotated[int, Field(ge=1, le=8)] | None = None
    min_concurrency: Count | None = None
    max_concurrency: Count | None = None
    max_multiplexing: Annotated[int, Field(ge=1)] | None = None
    concurrency_buffer: Count | None = None
    concurrency_buffer_perc: Annotated[int, Field(ge=0, le=100)] | None = None
    scaling_delay: Count | None = None
    request_timeout: Seconds | None = None
    request_start_timeout: Annotated[float, Field(gt=0)] | None = None
    startup_timeout: Seconds | None = None
    keep_alive: Count | None = None
    termination_grace_period_seconds: Count | None = None
    regions: list[Region] | None = None
    secrets: list[EnvVarName] | None = None
    data_mounts: list[Annotated[str, StringConstraints(pattern=r"^/data(/|$)")]] | None = None
    app_files: list[str] | None = None
    app_files_ignore: list[str] | None = None
    exposed_port: Port | None = None
    metrics_port: Port | None = None
    health_check: HealthCheck | None = None
    app_scale_settings: bool | None = None
    image: ImageConfig | None = None
    skip_retry_conditions: list[RetryCondition] | None = None
    retry_config: dict[RetryCondition, RetryEntry] | None = None
    python_entry_point: Annotated[str, StringConstraints(pattern=r"^[\w.]+:\w+$")] | None = None
    private_logs: bool | None = None
    no_scale: bool | None = None
    requirements_context_dir: str | None = None
    app_files_context_dir: str | None = None

    @field_validator("base_image")
    @classmethod
    def _image_reference(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE_REF_RE.match(value):
            raise ValueError("is not a Docker image reference such as 'python:3.11-slim' or 'ghcr.io/org/image:tag'")
        return value

    @field_validator("requirements")
    @classmethod
    def _pip_requirements(cls, value: list[str]) -> list[str]:
        for spec in value:
            try:
                Requirement(spec)
            except InvalidRequirement:
                raise ValueError(
                    f"has {spec!r}, which is not a pip requirement such as 'package==1.2.3' (one per entry)"
                ) from None
        return value

    @field_validator("machine_type", mode="before")
    @classmethod
    def _machine_type_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("secrets", "regions", "skip_retry_conditions", mode="before")
    @classmethod
    def _str_to_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> AppConfig:
        if self.mode == "app":
            if self.exposed_port is not None:
                raise ValueError(
                    "exposed_port (--port) is for Direct Server Mode only: a fal.App always "
                    f"listens on {FAL_APP_PORT} inside the runner. Remove it, or use --mode server"
                )
            if self.cmd is not None:
                raise ValueError("cmd (--cmd) is for Direct Server Mode only; remove it in app mode")
            if self.image is not None:
                raise ValueError("image is for Direct Server Mode; a fal.App sets `image` on its class")
        else:
            if self.exposed_port is None:
                raise ValueError(
                    "Direct Server Mode needs the port the server listens on: set exposed_port "
                    f"(--port, e.g. --port {DEFAULT_SERVER_PORT})"
                )
        if (
            self.min_concurrency is not None
            and self.max_concurrency is not None
            and self.min_concurrency > self.max_concurrency
        ):
            raise ValueError(
                f"min_concurrency ({self.min_concurrency}) is greater than max_concurrency "
                f"({self.max_concurrency}); lower --min-concurrency or raise --max-concurrency"
            )
        if self.base_image is not None and self.base_dockerfile is not None:
            raise ValueError("base_image (--base-image) and a Dockerfile to start from exclude each other; keep one")
        if self.num_gpus is not None and not self.is_gpu:
            raise ValueError("num_gpus (--num-gpus) needs a GPU machine_type such as GPU-H100")
        return self

    # -- derived views ----------------------------------------------------------------------
    @property
    def is_gpu(self) -> bool:
        return any(m.upper().startswith("GPU") for m in self.machine_type or ())

    @property
    def warnings(self) -> list[str]:
        """What fal may refuse at deploy although it is well-formed: machine types fal does not list."""
        known = CPU_MACHINE_TYPES + GPU_MACHINE_TYPES
        unknown = [m for m in self.machine_type or () if m not in known]
        if not unknown:
            return []
        return [
            f"machine_type {', '.join(map(repr, unknown))} is not among the types fal lists ({', '.join(known)}); "
            "fal decides when you deploy there."
        ]

    @property
    def port(self) -> int:
        """Port the app listens on in its container: the user's port, or fal's 8080 for an App."""
        return self.exposed_port if self.mode == "server" and self.exposed_port is not None else FAL_APP_PORT

    @property
    def effective_python_version(self) -> str:
        return self.python_version or kernel_python_version()

    def fal_keys(self) -> dict[str, Any]:
        """The configured fal keys (unset ones omitted), as plain TOML-ready values. A server's
        ``app_files`` are copied into its image by the Dockerfile, as fal refuses the key beside ``image``."""
        excluded = {*PROJECT_FIELDS, *(("app_files", "app_files_ignore") if self.mode == "server" else ())}
        data = self.model_dump(exclude_none=True, exclude=excluded)
        if data.get("machine_type") and len(data["machine_type"]) == 1:
            data["machine_type"] = data["machine_type"][0]
        return data

    # -- construction with errors a user can act on -------------------------------------------
    @classmethod
    def build(cls, values: dict[str, Any], *, where: str = "") -> AppConfig:
        """Validate ``values`` into an AppConfig, or raise ConfigError naming each bad key."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, where=where), fields=error_fields(exc)) from None

    def updated(self, **changes: Any) -> AppConfig:
        """A copy with ``changes`` applied and validated as a whole."""
        return AppConfig.build({**self.model_dump(exclude_none=True), **changes})


def error_fields(exc: ValidationError) -> list[str]:
    """The AppConfig keys a validation error is about (a rule over several keys names them)."""
    fields: list[str] = []
    for err in exc.errors(include_url=False):
        if err["loc"]:
            named = [str(err["loc"][0])]
        else:
            named = [
                f for f in AppConfig.model_fields if f not in ("name", "mode") and re.search(rf"\b{f}\b", err["msg"])
            ]
        fields += [f for f in named if f not in fields]
    return fields


def check_toml_keys(table: dict[str, Any], *, where: str) -> None:
    """Refuse keys ``fal deploy`` refuses (ConfigError naming each and the nearest valid key)."""
    unexpected = sorted(set(table) - FAL_TOML_KEYS)
    if not unexpected:
        return
    parts = []
    for key in unexpected:
        near = difflib.get_close_matches(key, sorted(FAL_TOML_KEYS), n=1, cutoff=0.6)
        parts.append(f"`{key}`" + (f" (did you mean `{near[0]}`?)" if near else ""))
    raise ConfigError(
        f"Found unexpected keys in {where}: {', '.join(parts)}. `fal deploy` refuses them too; correct or remove them."
    )


def local_notes(table: dict[str, Any]) -> list[str]:
    """Notes for the keys of a ``[tool.fal.apps.<name>]`` table that fal applies and local runners do not."""
    return [f"{key} applies on fal only: {why}." for key, why in LOCAL_IGNORED.items() if key in table]


def describe_validation_error(exc: ValidationError, *, where: str = "") -> str:
    """One readable paragraph for a pydantic error on AppConfig: key, flag, value, rule."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        if not loc:  # a model-level rule; its message already names the keys
            parts.append(err["msg"].removeprefix("Value error, "))
            continue
        key = ".".join(loc)
        top = loc[0]
        flag = f" ({flag_for(top)})" if top in AppConfig.model_fields else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            msg = f"must be one of {allowed}"
        elif err["type"] == "string_pattern_mismatch" and top == "name":
            msg = (
                "must be lowercase letters, digits, '-' or '_', start with a letter or digit, "
                "at most 63 characters (e.g. 'text-stats')"
            )
        elif err["type"] == "string_pattern_mismatch" and top == "machine_type":
            msg = "must be a machine type name such as XL or GPU-H100 (letters, digits, '-', '.', '_')"
        elif err["type"] == "extra_forbidden":
            near = difflib.get_close_matches(loc[-1], _fields_at(loc[:-1]), n=1, cutoff=0.6)
            msg = "is not a fal configuration key" + (f" (did you mean `{near[0]}`?)" if near else "")
        value = err.get("input")
        shown = "" if isinstance(value, dict) or err["type"] == "missing" else f", got {short_repr(value)}"
        parts.append(f"`{key}`{flag} {msg}{shown}")
    prefix = f"Invalid configuration{' in ' + where if where else ''}: "
    return prefix + "; ".join(parts) + "."


def _fields_at(loc: list[str]) -> list[str]:
    """The field names of the model at ``loc`` (AppConfig at the top, its tables below)."""
    model: type[BaseModel] | None = AppConfig
    for part in loc:
        assert model is not None
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        nested = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        model = next((a for a in nested if issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields) if model is not None else []


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` of a bad value for a message: a credential's value shows as ``***``, the text is cut
    to ``limit`` characters, and an integer too long to print is described."""
    try:
        text = redact(repr(value))
    except ValueError:  # an integer over Python's 4,300-digit limit for conversion to text
        return "a number too large to print"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (no lone surrogate such as ``\\ud800``, which JSON's
    escapes can carry but no file, path or parser takes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
