"""Forms: definitions, embeddable snippet and hosted page, spam-safe submissions."""
