"""Where Steward decides what it talks to: sandbox or real mailbox, local CRM or
Airtable, template or language-model drafter.

Pages and the command line ask this module for a mailbox, a CRM and a drafter and
never care which kind they get; that is what lets every page work in sandbox mode
and unchanged against real services.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from email.utils import parseaddr

from sqlalchemy import Engine

from lib.crm.base import Crm
from lib.db import get_engine
from lib.drafting.base import Drafter
from lib.mailbox.base import Mailbox
from lib.settings import Settings, load_settings
from lib.vault import Vault, load_or_create_key

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The configured database and service adapters for one process."""

    settings: Settings
    engine: Engine
    _vault: Vault | None = field(default=None, repr=False)

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            key = load_or_create_key(
                self.settings.data_dir, self.settings.encryption_key
            )
            self._vault = Vault(self.engine, key)
        return self._vault

    @property
    def sandbox_account(self) -> str:
        return parseaddr(self.settings.sandbox_sender)[1].lower()

    def mailbox(self, account: str | None = None) -> Mailbox:
        """The mailbox to send from and sync: Gmail for ``account`` when Gmail is
        configured, else the sandbox mailbox. Raises AuthError when the Gmail
        account is not connected."""
        if self.settings.gmail is None:
            from lib.mailbox.sandbox import SandboxMailbox

            return SandboxMailbox(self.engine, self.settings.sandbox_sender)
        from lib.mailbox.gmail import open_gmail_mailbox

        return open_gmail_mailbox(self, account)

    def mailboxes(self) -> list[Mailbox]:
        """Every mailbox sync should read: the sandbox one, or each connected Gmail
        account (an account whose token was withdrawn is skipped by the adapter)."""
        if self.settings.gmail is None:
            return [self.mailbox()]
        from lib.mailbox.gmail import open_all_gmail_mailboxes

        return list(open_all_gmail_mailboxes(self))

    def crm(self) -> Crm:
        """Airtable when it is configured (secrets or Connect page), else the local
        CRM."""
        from lib.crm.airtable import open_airtable_crm

        crm = open_airtable_crm(self)
        if crm is not None:
            return crm
        from lib.crm.sandbox import SandboxCrm

        return SandboxCrm(self.engine)

    def drafter(self) -> Drafter:
        """The language-model drafter when a model is configured, else the
        template drafter."""
        from lib.drafting.ai import open_model_drafter

        drafter = open_model_drafter(self)
        if drafter is not None:
            return drafter
        from lib.drafting.template import TemplateDrafter

        return TemplateDrafter()

    @property
    def mode_label(self) -> str:
        """What Steward is using right now, for the banner: the configured secrets
        and what was connected on the Connect page (stored in the database)."""
        mailbox = "sandbox mailbox" if self.settings.sandbox else "Gmail"
        drafter = self.drafter().name
        drafter = "template drafter" if drafter == "template" else drafter
        return f"{mailbox}, {self.crm().name}, {drafter}"

    @property
    def uses_local_crm(self) -> bool:
        from lib.crm.sandbox import SandboxCrm

        return isinstance(self.crm(), SandboxCrm)


def open_services(settings: Settings | None = None) -> Services:
    """Services for the current configuration, with the database migrated."""
    settings = settings or load_settings()
    return Services(settings=settings, engine=get_engine(settings.database_url))
