"""The promotion project's configuration (relpromote.yml): its schema and how a bad file is reported.

The schema is the contract a reviewed config must meet. Loading either returns a fully validated,
immutable `Config` or raises `BadInput` with one line naming the file, the key and the fix.
"""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from relpromote import yamlfile
from relpromote.adapters.files import read_named_file
from relpromote.adapters.project_files import DEFAULT_CONFIG_NAME as DEFAULT_CONFIG_NAME  # re-exported
from relpromote.announce import AnnounceConfig
from relpromote.errors import BadInput
from relpromote.secret import SecretSource

if TYPE_CHECKING:
    from relpromote.refresh import RefreshConfig

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
DURATION_PATTERN = r"^[1-9][0-9]*[mhdw]$"
GROUP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$"  # a POSIX group name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class StoreConfig(_Strict):
    """Where built artifacts live. A relative path is relative to the project directory."""

    path: str = ".relpromote/store"


class LedgerConfig(_Strict):
    """Where the ledger lives: `sqlite:///relative/or/absolute.db` or `postgresql://...`."""

    url: str = "sqlite:///.relpromote/ledger.db"

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value


class RunsConfig(_Strict):
    """ansible-runner's run folders under .relpromote/runs: how many to keep for inspection."""

    keep: Annotated[int, Field(ge=1, le=10000)] = 20


Roles = list[Annotated[str, Field(pattern=NAME_PATTERN)]]


class AllowConfig(_Strict):
    """Which roles may act on one environment. Unset acts use the defaults in relpromote.policy."""

    promote: Roles | None = None
    accept: Roles | None = None
    reject: Roles | None = None
    approve: Roles | None = None
    rollback: Roles | None = None
    break_glass: Roles | None = None
    lock_release: Roles | None = None
    refresh: Roles | None = None


class GlobalAllowConfig(_Strict):
    build: Roles | None = None


class ApprovalConfig(_Strict):
    required: bool = True
    max_validity: Annotated[str, Field(pattern=DURATION_PATTERN)] = "7d"
    separation_of_duties: bool = True  # the approver is neither the builder nor the requester


class AuthorityConfig(_Strict):
    """Changes to who may do what (people, roles, approval policy, freezes) count in the environments listed under
    `require_approval` only once someone holding one of the `approvers` roles in the authority in force before the
    change approved it (`relpromote authority approve`); see relpromote.authority."""

    require_approval: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = []
    approvers: Roles = ["admin"]


class FreezeWindow(_Strict):
    """A period with no promotions: a date range (`start`..`end`, inclusive) or a cron expression
    (`cron`: minute hour day-of-month month day-of-week, names such as MON-FRI, or @daily) matching
    frozen minutes; both read in `timezone` (an IANA name, default UTC)."""

    reason: str
    start: datetime | date | None = None
    end: datetime | date | None = None
    cron: str | None = None
    timezone: str = "UTC"

    @model_validator(mode="after")
    def _one_kind(self) -> FreezeWindow:
        from relpromote.freeze import parse_cron, zone

        if (self.cron is None) == (self.start is None or self.end is None):
            raise ValueError("give either start and end, or cron")
        if self.cron is not None:
            parse_cron(self.cron)
        zone(self.timezone)
        return self


class VaultConfig(_Strict):
    id: Annotated[str, Field(pattern=NAME_PATTERN)]
    password: SecretSource
    file: str = "group_vars/all/vault.yml"  # the encrypted variables, relative to the inventory (refresh-qa reads it)


class TestStep(_Strict):
    """An automated test run right after a release goes live; its JUnit result becomes evidence."""

    kind: Annotated[str, Field(pattern=NAME_PATTERN)]
    playbook: str | None = None
    command: str | None = None
    timeout: Annotated[int, Field(ge=1, le=86400)] = 600

    @model_validator(mode="after")
    def _exactly_one(self) -> TestStep:
        if (self.playbook is None) == (self.command is None):
            raise ValueError("give exactly one of playbook or command")
        return self


class ArtifactsConfig(_Strict):
    """How hosts get the artifact (docs/fleet.md): `push` (the controller uploads it over each host's SSH connection)
    or `pull` (each host downloads `<url>/sha256/<digest>.tar.gz` from an artifact server and checks its sha256)."""

    transfer: typing.Literal["push", "pull"] = "push"
    url: str | None = None  # where the store's sha256/ folder is served

    @field_validator("url")
    @classmethod
    def _web_address(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("http://", "https://")) or "@" in value or any(c.isspace() for c in value)):
            raise ValueError("must be an http:// or https:// address without a user name or password, e.g. https://artifacts.example.org/shop")
        return value

    @model_validator(mode="after")
    def _pull_has_url(self) -> ArtifactsConfig:
        if self.transfer == "pull" and not self.url:
            raise ValueError("transfer: pull needs url: the artifact server's address, e.g. https://artifacts.example.org/shop")
        return self


class ExecutionNodeConfig(_Strict):
    """A host inside the environment's network that runs its promotions and rollbacks (docs/execution-node.md)."""

    host: str
    user: str | None = None  # the SSH login on the node; ssh's default when absent
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    command: str = "relpromote"  # relpromote on the node
    config: str | None = None  # the node's own config on the node (relpromote node work --node-config)
    identity_file: str | None = None  # the controller's key for the node (never the environment's hosts' key)
    known_hosts: str | None = None  # the node's pinned host key, relative to the project


class EnvironmentConfig(_Strict):
    inventory: str
    execution_node: ExecutionNodeConfig | None = None
    protected: bool = False
    hosts: str = "app"  # the inventory group (or pattern) a release goes to
    allow: AllowConfig = AllowConfig()
    approval: ApprovalConfig | None = None  # protected environments require one unless `required: false`
    evidence: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = []  # kinds of test evidence acceptance needs
    tests: list[TestStep] = []
    freeze: list[FreezeWindow] = []
    vault: VaultConfig | None = None
    artifacts: ArtifactsConfig = ArtifactsConfig()  # push (default) or pull from an artifact server

    def approval_policy(self) -> ApprovalConfig | None:
        if self.approval is not None:
            return self.approval if self.approval.required else None
        return ApprovalConfig() if self.protected else None


class Person(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    # relpromote's own key line, or an OpenSSH ed25519 public key (`type base64`, no comment): see relpromote.identity
    key: Annotated[str, Field(pattern=r"^(ed25519:[A-Za-z0-9+/]{43}=|(ssh-ed25519|sk-ssh-ed25519@openssh\.com) AAAA[A-Za-z0-9+/]+={0,3})$")]
    roles: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = []


class RevisePolicy(_Strict):
    """The source rollback policy: when rejected changes may still be dropped, and what must follow."""

    deadline: Annotated[str, Field(pattern=DURATION_PATTERN)] = "2d"  # before the manifest's planned_release
    retest: list[Annotated[str, Field(pattern=NAME_PATTERN)]] = ["regression"]  # evidence the revision's first acceptance needs


class SourceConfig(_Strict):
    """Configuration management of the application source that `build` packages."""

    allow_dirty: bool = False
    tag: bool = False
    tag_prefix: str = "v"
    revise: RevisePolicy = RevisePolicy()


def _refresh_section(value: Any) -> Any:
    """Validate `refresh:` only where a config has one: the refresh and masking code is costly to import."""
    if value is None:
        return None
    from relpromote.refresh import RefreshConfig

    try:
        return RefreshConfig.model_validate(value)
    except ValidationError as exc:
        raise _PathError("", _first_problem(exc, RefreshConfig, "refresh")) from None  # the message names its key


if TYPE_CHECKING:
    RefreshSection: TypeAlias = "RefreshConfig | None"
else:
    RefreshSection = Annotated[Any, AfterValidator(_refresh_section)]


# ---- parity: how far one environment is from mirroring another (relpromote parity, the parity gate) ----
ParityFact = typing.Literal["os", "kernel", "cpu_count", "memory", "packages", "python", "runtime", "config", "ports", "hostname", "release"]
PARITY_FACTS: tuple[str, ...] = typing.get_args(ParityFact)
PARITY_COUNTED: list[ParityFact] = ["os", "kernel", "cpu_count", "memory", "packages", "python", "runtime", "config", "ports"]


class ParityTolerance(_Strict):
    memory_percent: Annotated[float, Field(ge=0, le=100)] = 10.0  # memory within this share of the reference's counts as equal


class ParityGateConfig(_Strict):
    """Promotions to `environment` need `mirror` to have passed a parity check against it within `max_age`,
    and the release to have been accepted in `mirror`."""

    environment: Annotated[str, Field(pattern=NAME_PATTERN)] = "production"
    mirror: Annotated[str, Field(pattern=NAME_PATTERN)] = "deployment"
    max_age: Annotated[str, Field(pattern=DURATION_PATTERN)] = "24h"


class ParityConfig(_Strict):
    """What `relpromote parity` gathers and which differences count (host names and addresses never do)."""

    facts: list[ParityFact] = PARITY_COUNTED  # the facts that count
    tolerance: ParityTolerance = ParityTolerance()
    packages: list[str] = []  # system packages (dpkg or rpm) whose versions are compared
    python_packages: list[str] = []  # Python distributions of the app's environment whose versions are compared
    python_path: list[str] = []  # where those are installed on a host (globs; Ansible templates allowed); default the host's python3
    runtime: str | None = None  # a command on the host that prints the app's runtime version, e.g. "python3 --version"
    app_config: list[str] = []  # the app's configuration files on a host: their keys and salted hashes of their values
    ports: list[Annotated[str, Field(pattern=r"^[0-9]{1,5}(-[0-9]{1,5})?$")]] = ["1-32767"]  # listening ports compared
    groups: list[str] = []  # the inventory groups compared; default every group
    gate: ParityGateConfig | None = None


class ContentConfig(_Strict):
    """The playbooks and roles runs use: an installed Ansible collection's (relpromote.release.promote, ...) instead of the
    project's playbooks/ and roles/ (README: As an Ansible collection)."""

    collection: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]  # namespace.name, e.g. relpromote.release
    path: str | None = None  # where it is installed (the folder holding ansible_collections/), relative to the project


class Config(_Strict):
    project: Annotated[str, Field(pattern=NAME_PATTERN)]
    promotion_path: list[Annotated[str, Field(pattern=NAME_PATTERN)]]
    # Names, never paths: an environment's name makes run folders, known_hosts patterns, messages and ledger fields.
    environments: dict[Annotated[str, Field(pattern=NAME_PATTERN)], EnvironmentConfig]
    people: list[Person] = []
    store: StoreConfig = StoreConfig()
    ledger: LedgerConfig = LedgerConfig()
    runs: RunsConfig = RunsConfig()
    allow: GlobalAllowConfig = GlobalAllowConfig()
    refresh: RefreshSection = None  # QA data from production, masked (relpromote refresh-qa)
    parity: ParityConfig = ParityConfig()  # relpromote parity and its gate
    # The operators' group that shares the project folder on one host: the ledger, the store and the run folders are
    # made its own (relpromote.adapters.shared_folder). Unset: they stay private to whoever made them.
    group: Annotated[str, Field(pattern=GROUP_PATTERN)] | None = None
    # `project`: the project's playbooks/ and roles/; {collection: NAMESPACE.NAME, path: FOLDER}: an installed collection's.
    content: typing.Literal["project"] | ContentConfig = "project"

    @model_validator(mode="after")
    def _refresh_environments(self) -> Config:
        if self.refresh is not None:
            for side in (self.refresh.source, self.refresh.target):
                if side.environment not in self.environments:
                    raise _PathError("refresh", f"environment '{side.environment}' is not defined; use one of {', '.join(self.promotion_path)}")
        return self
    source: SourceConfig = SourceConfig()
    announce: AnnounceConfig = AnnounceConfig()  # channels for release announcements (relpromote.announce)
    authority: AuthorityConfig = AuthorityConfig()  # who approves changes to who may do what (relpromote.authority)

    @model_validator(mode="after")
    def _authority_environments(self) -> Config:
        for index, name in enumerate(self.authority.require_approval):
            if name not in self.environments:
                raise _PathError(f"authority.require_approval.{index}", f"environment '{name}' is not defined; use one of {', '.join(self.promotion_path)}")
        return self

    @model_validator(mode="after")
    def _parity_environments(self) -> Config:
        gate = self.parity.gate
        for key, name in (("environment", gate.environment), ("mirror", gate.mirror)) if gate else ():
            if name not in self.environments:
                raise _PathError(f"parity.gate.{key}", f"environment '{name}' is not defined; use one of {', '.join(self.promotion_path)}")
        return self

    @model_validator(mode="after")
    def _path_is_a_path(self) -> Config:
        defined = set(self.environments)
        seen: set[str] = set()
        for index, name in enumerate(self.promotion_path):
            if name in seen:
                raise _PathError(
                    f"promotion_path.{index}",
                    f"'{name}' appears twice, so the order is not a path; list each environment once",
                )
            seen.add(name)
            if name not in defined:
                raise _PathError(
                    f"promotion_path.{index}",
                    f"'{name}' is not defined; add it under environments or remove it from promotion_path",
                )
        for name in sorted(defined - seen):
            raise _PathError(
                "promotion_path",
                f"environment '{name}' is defined but not on the path; add it to promotion_path",
            )
        if not self.promotion_path:
            raise _PathError("promotion_path", "is empty; list the environments in promotion order, e.g. [qa, deployment, production]")
        names = [p.name for p in self.people]
        for name in names:
            if names.count(name) > 1:
                raise _PathError("people", f"'{name}' is listed twice; keep one entry per person")
        keys = [p.key for p in self.people]
        for person in self.people:
            if keys.count(person.key) > 1:
                raise _PathError("people", f"the key of '{person.name}' is shared with another person; give each person their own key")
        return self

    # ---- derived views (no I/O) ----
    def environment(self, name: str) -> EnvironmentConfig:
        if name not in self.environments:
            raise BadInput(
                f"unknown environment '{name}'; known environments: {', '.join(self.promotion_path)}"
            )
        return self.environments[name]

    def previous_environment(self, name: str) -> str | None:
        index = self.promotion_path.index(name)
        return self.promotion_path[index - 1] if index > 0 else None

    def person_by_key(self, key: str) -> Person | None:
        return next((p for p in self.people if p.key == key), None)


class _PathError(ValueError):
    """A cross-field error that names its own key, so the message points at the right place."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def parse_config(text: str, source: str) -> Config:
    """Validate config text; `source` names the file in messages."""
    data = yamlfile.load(text, source)
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a mapping of settings at the top level; see `relpromote init` for an example")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"{source}: {_first_problem(exc)}") from None


MAX_CONFIG_BYTES = 4 << 20


def load_config(path: Path) -> Config:
    try:
        # A file a person named: a pipe nobody writes to or /dev/zero must not hang the command (adapters.files).
        text = read_named_file(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no such config; run `relpromote init DIR`, or pass --config FILE or set RELPROMOTE_CONFIG"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the config ({exc}); check the file and its permissions") from None
    return parse_config(text, str(path))


def _first_problem(exc: ValidationError, model: type[BaseModel] | None = None, prefix: str = "") -> str:
    errors = exc.errors()
    # An unknown key usually explains a missing one next to it (a typo), so report it first.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(error["loc"])
    context = error.get("ctx") or {}
    original = context.get("error")
    if isinstance(original, _PathError):
        return f"{original.key}: {original.message}" if original.key else original.message
    key = ".".join(str(part) for part in (prefix, *loc) if part != "") or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        import difflib  # only a mistake pays for it

        allowed = _fields_at(model or Config, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(sorted(allowed))}"
        return f"{key}: unknown key; {hint}"
    if kind == "missing":
        return f"{key}: required key is missing; add it"
    if kind == "string_pattern_mismatch" and loc[-1] == "key":
        return f"{key}: not an ed25519 public key line; paste the line `relpromote keygen` printed (or `ssh-ed25519 AAAA…` without its comment)"
    if kind == "string_pattern_mismatch" and loc == ("group",):
        return f"{key}: {error['input']!r} is not a group name; give the name of a group of this host (letters, digits, '.', '-', '_')"
    if kind == "string_pattern_mismatch" and loc[:1] in (("promotion_path",), ("environments",)):
        return (f"{key}: {error['input']!r} is not a valid environment name (it names folders and files); start with a "
                "lower-case letter, then lower-case letters, digits, '-' and '_'")
    if kind == "string_pattern_mismatch":
        return f"{key}: {error['input']!r} is not a valid name; use lower-case letters, digits, '-' and '_'"
    if kind == "value_error":
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    return f"{key}: {error['msg'].rstrip('.')} (got {error.get('input')!r}); fix the value"


def _fields_at(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found at `loc` (dict keys and list indexes are stepped over)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(str(part))
            if field is None:
                return []
            annotation = field.annotation
        elif typing.get_origin(annotation) in (dict, list):
            annotation = typing.get_args(annotation)[-1]
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0]
        else:
            return annotation
