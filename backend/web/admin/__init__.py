"""Settings pages, for admins: users, API keys, site keys, node types and the audit log."""

from backend.web.admin import audit, keys, node_types, users

ROUTES = [*users.ROUTES, *keys.ROUTES, *node_types.ROUTES, *audit.ROUTES]
