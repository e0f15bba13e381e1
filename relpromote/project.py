"""A promotion project: its directory, validated config, ledger, artifact store and acting identity."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relpromote.adapters.config_history import committed_config, config_stamp
from relpromote.adapters.project_files import config_path_from as config_path_from  # re-exported
from relpromote.adapters.project_files import open_ledger as open_ledger
from relpromote.adapters.project_files import sqlite_path as sqlite_path
from relpromote.authority import authority_digest, authority_document, authority_record
from relpromote.config import Config, Person, load_config
from relpromote.errors import Refused
from relpromote.ledger import Entry, LedgerStore
from relpromote.policy import trusted_state
from relpromote.state import ProjectState

if TYPE_CHECKING:
    from relpromote.adapters.artifact_store import LocalArtifactStore
    from relpromote.adapters.shared_folder import SharedFolder
    from relpromote.identity import Identity


def identity_path_from(option: str | None) -> Path:
    from relpromote.identity import DEFAULT_IDENTITY

    return Path(option or os.environ.get("RELPROMOTE_IDENTITY") or DEFAULT_IDENTITY).expanduser()


@dataclass
class Project:
    root: Path
    config_path: Path
    config: Config
    _ledger: LedgerStore | None = field(default=None, repr=False)
    shared: SharedFolder | None = field(default=None, repr=False)  # with `group:`: the parts the group shares
    notes: list[str] = field(default_factory=list, repr=False)  # what opening found and could not fix, one line each

    @classmethod
    def open(cls, config_path: Path) -> Project:
        config = load_config(config_path)
        project = cls(config_path.resolve().parent, config_path, config)
        if config.group is not None:
            from relpromote.adapters.shared_folder import shared_folder

            project.shared = shared_folder(config.group, str(config_path), project.root / ".relpromote", project.runs_dir,
                                           project.resolve(config.store.path), sqlite_path(config.ledger.url, project.root))
            project.notes = project.shared.open()
        return project

    def resolve(self, configured: str) -> Path:
        path = Path(configured).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def ledger(self) -> LedgerStore:
        if self._ledger is None:
            self._ledger = open_ledger(self.config.ledger.url, self.root)
            self._ledger.stamp = self._stamp  # every entry records its config's commit and digest, and its authority's
            self._ledger.authority = lambda last: authority_record(self.config, last)  # recorded when first used
        return self._ledger

    def _stamp(self) -> dict[str, Any]:
        return {**config_stamp(self.config_path), "authority": authority_digest(authority_document(self.config))}

    @property
    def store(self) -> LocalArtifactStore:
        from relpromote.adapters.artifact_store import LocalArtifactStore

        return LocalArtifactStore(self.resolve(self.config.store.path), read_only_mode=0o444 if self.shared is None else 0o440)

    @property
    def runs_dir(self) -> Path:
        """ansible-runner's run folders."""
        return self.root / ".relpromote" / "runs"

    def state(self, *, remembered: bool = False, entries: list[Entry] | None = None) -> ProjectState:
        """The state from the entries that count (the ledger's, or `entries` the caller just read from it), every entry
        checked. With `remembered` (`status`, `history`), a signature this user verified before is not verified again
        (relpromote.adapters.verified_cache); either way what verified is remembered for the next command."""
        from relpromote.adapters.verified_cache import open_memo

        memo = open_memo(self.ledger_identity, trust=remembered)
        rows = self.ledger.entries() if entries is None else entries
        state = trusted_state(rows, self.config, committed_config(self.config_path), memo.verify)
        memo.save()
        state.config_record = config_stamp(self.config_path)  # the committed gate covers the config itself
        return state

    @property
    def ledger_identity(self) -> str:
        """The project's name and its ledger's location (the file's absolute path, or the database URL)."""
        from relpromote.adapters.verified_cache import ledger_identity

        path = sqlite_path(self.config.ledger.url, self.root)
        return ledger_identity(self.config.project, str(path.resolve()) if path is not None else self.config.ledger.url)

    def actor(self, identity: Identity) -> Person:
        """The person the identity belongs to; anyone else is refused before anything happens."""
        person = self.config.person_by_key(identity.public_key)
        if person is None:
            raise Refused(
                f"identity {identity.public_key[:20]}… is not among the people of {self.config_path}; "
                "ask for your public key line to be added to the config's people list"
            )
        return person

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        if self.shared is not None:
            self.shared.repair()  # after the ledger's close: opening its file here would drop SQLite's locks


def load_actor(project: Project, identity_option: str | None) -> tuple[Identity, Person]:
    from relpromote.identity import load_identity

    identity = load_identity(identity_path_from(identity_option))
    return identity, project.actor(identity)
