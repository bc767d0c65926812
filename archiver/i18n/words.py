"""Words the catalog and the custody log keep in English (media types, flags, roles, custody actions, run states,
the default keeping classes): a table or a page shows them in the reader's language, JSON keeps them as they are.
A word not listed here (a class an office named itself) is shown as it is."""

from __future__ import annotations

from archiver.i18n import N_, _

MEDIA = (N_("video"), N_("audio"), N_("photo"), N_("other"))
LINKS = (N_("manual"), N_("automatic"))
FLAGS = (N_("name_unparsed"), N_("device_unknown"), N_("unreadable_media"), N_("extension_mismatch"),
         N_("purged"), N_("time_set"))
ROLES = (N_("officer"), N_("clerk"), N_("legal"), N_("auditor"), N_("admin"), N_("root"), N_("service"))
STATES = (N_("running"), N_("ok"), N_("partial"), N_("failed"), N_("requested"), N_("approved"), N_("purging"),
          N_("done"), N_("expired"), N_("problems"), N_("interrupted"))
CLASSES = (N_("invalid"), N_("unlinked"), N_("evidence"), N_("major"), N_("case_30y"), N_("case_10y"))
ACTIONS = (
    N_("init"), N_("ingest"), N_("clear_from_device"), N_("unreadable_media"), N_("extension_mismatch"),
    N_("device_unknown"), N_("device_register"), N_("lookup"), N_("retrieve"), N_("handover"), N_("export"),
    N_("verify"), N_("case_import"), N_("case_remove"), N_("link"), N_("unlink"), N_("people_import"),
    N_("recording_set_time"), N_("classify"), N_("hold_add"), N_("hold_remove"), N_("purge_request"),
    N_("purge_approve"), N_("purge_expired"), N_("purge"), N_("purge_done"), N_("backup_run"), N_("backup"),
    N_("backup_verify"), N_("backup_prune"), N_("backup_drop_purged"), N_("backup_legal_hold"), N_("restore"),
    N_("restore_station"), N_("rebuild_catalog"), N_("tighten_permissions"), N_("denied"), N_("station_add"),
    N_("view"), N_("web_login"), N_("web_login_failed"), N_("web_logout"),
)
# What verify, backup verify and the centre's checks find (problems.Kind, and the centre's own kinds).
PROBLEMS = (
    N_("missing"), N_("unreadable"), N_("mismatch"), N_("manifest"), N_("unexpected"), N_("custody_chain"),
    N_("custody_signature"), N_("custody_truncated"), N_("custody_anchor"), N_("custody_missing_event"),
    N_("custody_orphan_event"), N_("custody_unapproved_purge"), N_("backup_target"), N_("backup_manifest"),
    N_("backup_manifest_signature"), N_("backup_unknown"), N_("backup_unlisted"), N_("backup_missing"),
    N_("backup_unsafe"), N_("backup_size"), N_("backup_mismatch"), N_("backup_decrypt"), N_("backup_plaintext"),
    N_("backup_overwritten"), N_("backup_lock"), N_("changed"), N_("unsigned"), N_("truncated"), N_("gap"),
    N_("head"), N_("signature"), N_("fork"), N_("malformed"), N_("key"), N_("foreign"),
)
SCOPES = (N_("all"),)
_KNOWN = frozenset((*MEDIA, *LINKS, *FLAGS, *ROLES, *STATES, *CLASSES, *ACTIONS, *PROBLEMS, *SCOPES))


def word(key: str | None) -> str:
    """`key` in the reader's language if it is one of these words, else as it is ("-" for none)."""
    if not key:
        return "-"
    return _(key) if key in _KNOWN else key


def words(keys: list[str] | tuple[str, ...], separator: str = ", ") -> str:
    """Several, joined ("-" for none)."""
    return separator.join(word(k) for k in keys) or "-"
