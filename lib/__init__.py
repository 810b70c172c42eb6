"""Steward: draft, review and send donor emails, and log every sent email on the CRM.

Everything that is not page layout lives in this package so that it can be tested
without Streamlit and shared by the app and the command line (``python -m lib``).
"""
