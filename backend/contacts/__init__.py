"""Contacts: normalising identifiers, typed attributes, identify/upsert, consent, GDPR."""
