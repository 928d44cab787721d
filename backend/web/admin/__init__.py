"""Settings pages, for admins: users, API keys, site keys and the audit log."""

from backend.web.admin import audit, keys, users

ROUTES = [*users.ROUTES, *keys.ROUTES, *audit.ROUTES]
