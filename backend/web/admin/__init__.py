"""Settings pages, for admins: users, API keys, site keys, node types, data retention and the
audit log."""

from backend.web.admin import audit, keys, node_types, retention, users

ROUTES = [*users.ROUTES, *keys.ROUTES, *node_types.ROUTES, *retention.ROUTES, *audit.ROUTES]
