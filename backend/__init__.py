"""Touchflow web application: settings, database models, HTTP controllers and auth."""
