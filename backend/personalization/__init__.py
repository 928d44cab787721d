"""Web personalization: what anonymous and known visitors see in the site's slots.

- ``sanitize``: the HTML allow-list every stored block goes through;
- ``decide``: pure matching of default rules and assignments to a page;
- ``cache``: site keys and rules held in memory for a few seconds;
- ``stitch``: linking a visitor to a contact (events, journeys, content move over);
- ``delivery``: the ``web_content`` outbox channel (a flow's "show web content").
"""
