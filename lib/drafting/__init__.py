"""Drafters write the first draft of an email for one donor.

The template drafter (Jinja2, sandboxed) is the default; a language-model drafter
drops in behind the same :class:`lib.drafting.base.Drafter` interface.
"""
