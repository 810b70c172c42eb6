"""Steward's tables, in SQLAlchemy Core so the same schema runs on SQLite and later
PostgreSQL.

Times are stored as timezone-aware UTC ``DateTime`` values; JSON columns hold small
lists (several email addresses, source row numbers). Unique constraints carry the
safety rules: one send attempt per draft, one CRM log entry per (email, record).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# -- configuration and secrets -------------------------------------------------------

settings_table = Table(
    "settings",
    metadata,
    Column("key", String(120), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Tokens and keys, encrypted with lib.vault; never stored in clear.
secrets_table = Table(
    "secrets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# -- donors --------------------------------------------------------------------------

imports_table = Table(
    "imports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(200), nullable=False),  # file name or "airtable:<base>"
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("encoding", String(40)),
    Column("separator", String(8)),
    Column("mapping", JSON, nullable=False),
    Column("report", JSON, nullable=False),  # rejected and doubtful rows
    Column("imported_count", Integer, nullable=False, default=0),
)

donors_table = Table(
    "donors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # Stable identity for re-imports: CRM record ID when there is one, else address.
    Column("donor_key", String(300), nullable=False, unique=True),
    Column("import_id", Integer, ForeignKey("imports.id", ondelete="SET NULL")),
    Column("record_id", String(120)),  # the CRM record this donor came from
    Column("name", Text, nullable=False, default=""),
    Column("first_name", Text, nullable=False, default=""),
    Column("last_name", Text, nullable=False, default=""),
    Column("greeting", Text, nullable=False, default=""),  # "Peggy", "Don and Maura"
    Column("salutation", Text, nullable=False, default=""),  # "Mrs. Whitcombe"
    Column("organization", Text, nullable=False, default=""),
    Column("email", String(320)),  # the address to write to (normalised), or None
    Column("emails", JSON, nullable=False, default=list),  # every valid address
    Column("last_gift_amount", Float),
    Column("last_gift_date", String(10)),  # ISO date
    Column("lifetime_giving", Float),
    Column("gift_count", Integer, nullable=False, default=0),
    Column("currency", String(3)),
    Column("campaign", Text, nullable=False, default=""),
    Column("notes", Text, nullable=False, default=""),
    Column("do_not_email", Boolean, nullable=False, default=False),
    Column("opted_out", Boolean, nullable=False, default=False),
    Column("deceased", Boolean, nullable=False, default=False),
    Column("bounced", Boolean, nullable=False, default=False),
    Column("source_rows", JSON, nullable=False, default=list),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_donors_email", donors_table.c.email)
Index("ix_donors_record_id", donors_table.c.record_id)

# -- drafts and sending --------------------------------------------------------------

drafts_table = Table(
    "drafts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("donor_id", Integer, ForeignKey("donors.id", ondelete="CASCADE")),
    Column("campaign", Text, nullable=False, default=""),
    Column("to_address", String(320)),
    Column("cc", JSON, nullable=False, default=list),
    Column("bcc", JSON, nullable=False, default=list),
    Column("subject", Text, nullable=False, default=""),
    Column("body", Text, nullable=False, default=""),
    # draft | needs_review | approved | sending | sent | failed | blocked
    Column("status", String(20), nullable=False, default="draft"),
    Column("drafter", String(60), nullable=False, default="template"),
    Column("facts", JSON, nullable=False, default=list),  # facts the draft states
    Column("review_issues", JSON, nullable=False, default=list),
    Column("review_override", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("approved_by", String(320)),  # the account that approved = sends
    Column("approved_at", DateTime(timezone=True)),
    # RFC 5322 Message-ID, fixed before the first send attempt so a retry can ask
    # the mailbox whether this very message already went out.
    Column("rfc_message_id", String(300), unique=True),
    Column("mailbox_message_id", String(120)),
    Column("thread_id", String(120)),
    Column("in_reply_to", String(300)),
    Column("references", Text),
    Column("sent_at", DateTime(timezone=True)),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_drafts_status", drafts_table.c.status)
Index("ix_drafts_donor", drafts_table.c.donor_id)

send_attempts_table = Table(
    "send_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("draft_id", Integer, ForeignKey("drafts.id", ondelete="CASCADE")),
    Column("account", String(320), nullable=False),
    Column("rfc_message_id", String(300), nullable=False),
    # claimed | sent | failed | recovered
    Column("state", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("mailbox_message_id", String(120)),
    Column("thread_id", String(120)),
    Column("error", Text),
)
Index("ix_send_attempts_draft", send_attempts_table.c.draft_id)

# -- the sandbox mailbox (stands in for Gmail) ---------------------------------------

sandbox_messages_table = Table(
    "sandbox_messages",
    metadata,
    # history_id doubles as the Sent-folder cursor, like Gmail's historyId.
    Column("history_id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),  # mailbox id
    Column("thread_id", String(64), nullable=False),
    Column("account", String(320), nullable=False),
    Column("rfc_message_id", String(300)),
    Column("labels", JSON, nullable=False, default=list),
    Column("raw", LargeBinary, nullable=False),  # the full RFC 5322 message
    Column("internal_date", DateTime(timezone=True), nullable=False),
)
Index("ix_sandbox_messages_rfc", sandbox_messages_table.c.rfc_message_id)

# -- the sandbox CRM (stands in for Airtable or another CRM) -------------------------

crm_records_table = Table(
    "crm_records",
    metadata,
    Column("record_id", String(120), primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("emails", JSON, nullable=False, default=list),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

crm_record_emails_table = Table(
    "crm_record_emails",
    metadata,
    Column(
        "record_id",
        String(120),
        ForeignKey("crm_records.record_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("email", String(320), nullable=False),
    UniqueConstraint("record_id", "email", name="uq_crm_record_email"),
)
Index("ix_crm_record_emails_email", crm_record_emails_table.c.email)

crm_log_table = Table(
    "crm_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(120), nullable=False),
    Column("rfc_message_id", String(300), nullable=False),
    Column("mailbox_message_id", String(120)),
    Column("thread_id", String(120)),
    Column("subject", Text, nullable=False, default=""),
    Column("excerpt", Text, nullable=False, default=""),
    Column("sender", String(320), nullable=False, default=""),
    Column("recipient", String(320), nullable=False, default=""),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("logged_at", DateTime(timezone=True), nullable=False),
    Column("opens", Integer, nullable=False, default=0),
    Column("clicks", Integer, nullable=False, default=0),
    UniqueConstraint("rfc_message_id", "record_id", name="uq_crm_log_message_record"),
)
Index("ix_crm_log_record", crm_log_table.c.record_id)

# -- sync: what Steward saw in Sent, and what it owes the CRM ------------------------

sync_cursors_table = Table(
    "sync_cursors",
    metadata,
    # "sandbox:<addr>" or "gmail:<addr>"
    Column("mailbox", String(400), primary_key=True),
    Column("cursor", String(200)),
    Column("last_sync_at", DateTime(timezone=True)),
    Column("last_full_sync_at", DateTime(timezone=True)),
    Column("last_error", Text),
)

sent_mail_table = Table(
    "sent_mail",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("mailbox", String(400), nullable=False),
    Column("mailbox_message_id", String(120), nullable=False),
    # Deduplication key: the RFC Message-ID (or "mailbox:<id>" when a message has none).
    Column("rfc_message_id", String(300), nullable=False, unique=True),
    Column("thread_id", String(120)),
    Column("sender", String(320), nullable=False, default=""),
    Column("subject", Text, nullable=False, default=""),
    Column("excerpt", Text, nullable=False, default=""),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("draft_id", Integer, ForeignKey("drafts.id", ondelete="SET NULL")),
)
Index("ix_sent_mail_sent_at", sent_mail_table.c.sent_at)

# One row per (sent email, recipient address, matched record): the CRM log queue and
# the per-message check the dashboard shows.
log_queue_table = Table(
    "log_queue",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "sent_mail_id",
        Integer,
        ForeignKey("sent_mail.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("rfc_message_id", String(300), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_kind", String(3), nullable=False),  # to | cc | bcc
    # "" when no record matched (unmatched / excluded rows keep the address only).
    Column("record_id", String(120), nullable=False, default=""),
    # pending | logged | unmatched | excluded | error
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("crm_entry_id", String(120)),
    Column("queued_at", DateTime(timezone=True), nullable=False),
    Column("logged_at", DateTime(timezone=True)),
    UniqueConstraint(
        "rfc_message_id", "recipient", "record_id", name="uq_log_queue_entry"
    ),
)
Index("ix_log_queue_status", log_queue_table.c.status)

# -- Google accounts and the OAuth handshake -----------------------------------------

accounts_table = Table(
    "accounts",
    metadata,
    Column("email", String(320), primary_key=True),
    Column("scopes", JSON, nullable=False, default=list),
    Column("status", String(20), nullable=False),  # connected | disconnected
    Column("connected_at", DateTime(timezone=True)),
    Column("status_reason", Text),
    Column("workspace", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

oauth_states_table = Table(
    "oauth_states",
    metadata,
    Column("state", String(200), primary_key=True),
    Column("code_verifier", String(200), nullable=False),
    Column("scopes", JSON, nullable=False, default=list),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# -- tracking ------------------------------------------------------------------------

tracking_events_table = Table(
    "tracking_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rfc_message_id", String(300), nullable=False),
    Column("kind", String(8), nullable=False),  # open | click
    Column("url", Text),
    Column("user_agent", Text, nullable=False, default=""),
    Column("machine", Boolean, nullable=False, default=False),
    Column("reason", String(80), nullable=False, default=""),
    Column("at", DateTime(timezone=True), nullable=False),
)
Index("ix_tracking_message", tracking_events_table.c.rfc_message_id)

# -- AI drafting cache ---------------------------------------------------------------

draft_cache_table = Table(
    "draft_cache",
    metadata,
    Column("key", String(64), primary_key=True),  # sha256 of facts+brief+settings+model
    Column("subject", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("facts", JSON, nullable=False, default=list),
    Column("model", String(120), nullable=False),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# -- drafting jobs (background "Draft emails" runs; state survives a page rerun) -----

draft_jobs_table = Table(
    "draft_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # running | done | cancelled | failed | interrupted
    Column("status", String(20), nullable=False),
    Column("drafter", String(60), nullable=False, default=""),
    Column("donor_ids", JSON, nullable=False, default=list),
    Column("brief", JSON, nullable=False, default=dict),
    Column("total", Integer, nullable=False, default=0),
    Column("done", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("cached", Integer, nullable=False, default=0),
    Column("skipped", JSON, nullable=False, default=dict),  # {donor id: why}
    Column("model_calls", Integer, nullable=False, default=0),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float),  # estimated; None when the model has no known price
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("error", Text),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
)
Index("ix_draft_jobs_status", draft_jobs_table.c.status)
