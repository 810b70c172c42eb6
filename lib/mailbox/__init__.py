"""Mailboxes Steward sends from and reads the Sent folder of.

``SandboxMailbox`` keeps everything in the local database; ``GmailMailbox`` talks to
the Gmail API. Both satisfy :class:`lib.mailbox.base.Mailbox`.
"""
