"""The vocabulary of the ledger: the kind of every entry relpromote records.

These strings are part of the ledger's documented contract; never rename one.
"""

RELEASE_BUILT = "release.built"
PROMOTION_FINISHED = "promotion.finished"
VERDICT_ACCEPTED = "verdict.accepted"
VERDICT_REJECTED = "verdict.rejected"
APPROVAL_GRANTED = "approval.granted"
ROLLBACK_FINISHED = "rollback.finished"
LOCK_RELEASED = "lock.released"
REFRESH_FINISHED = "refresh.finished"
RELEASE_REVISED = "release.revised"
PERSON_RENAMED = "person.renamed"  # the config gave a key a new name; recorded, signed by that key, on its first use
REFRESH_STARTED = "refresh.started"
# Intent before effect: recorded once the environment is locked and before any host changes; the run's
# promotion.finished / rollback.finished carries the same lock_id. A started run with no finished entry is in doubt.
PROMOTION_STARTED = "promotion.started"
ROLLBACK_STARTED = "rollback.started"
PARITY_CHECKED = "parity.checked"  # relpromote parity ENV_A ENV_B: what differed, per group of hosts; the parity gate reads the last one
VERIFY_FINISHED = "verify.finished"  # relpromote verify ENV: what each host runs against the ledger, and any drift
ANNOUNCEMENT_FINISHED = "announcement.finished"  # the notes sent to the config's channels: each channel sent or failed (relpromote announce)
HOSTS_TRUSTED = "hosts.trusted"  # relpromote hosts trust: who pinned which SSH host keys (fingerprints) for an environment
# The config's authority (people, roles, approval policy, freezes: relpromote.authority): recorded, signed by whoever first
# acts under it; the first one recorded is the root (trusted on first use). `relpromote authority approve` brings a change
# into force, signed by an approver of the authority in force before it.
AUTHORITY_RECORDED = "authority.recorded"
AUTHORITY_APPROVED = "authority.approved"
