"""Message actions: what they put in the outbox, and when they rightly send nothing."""

from __future__ import annotations

from datetime import timedelta

from nodes.builtin.actions import NotifyOwner, SendEmail, SendSms, SendWebhook, ShowWebContent
from nodes.sdk.testing import DEFAULT_NOW, config_errors, contact, run_node, visitor

EMAIL = {
    "subject": "Your guide, {{ first_name | friend }}",
    "body": "Hi {{ first_name }},\n\nHere it is: https://shop.test/guide.pdf.\nEnjoy <3",
    "button_text": "Download the guide",
    "button_url": "https://shop.test/d/{{ trigger.form_id }}",
}
WITHDRAWN = {"email": {"granted": False}, "sms": {"granted": False}}


async def test_email_is_personalised_and_tracked() -> None:
    outcome = await run_node(
        SendEmail,
        EMAIL,
        profile=contact(7, first_name="Åsa <b>"),
        data={"trigger": {"type": "form.submitted", "properties": {"form_id": 3}}},
        journey_id=11,
        flow_id=2,
        node_id="confirm",
    )
    assert outcome.port == "next"
    [message] = outcome.messages
    assert message.channel == "email"
    assert message.category == "marketing"
    payload = message.payload
    assert payload["to"] == "ada7@example.test"
    assert payload["subject"] == "Your guide, Åsa <b>"
    assert payload["text"].startswith("Hi Åsa <b>,\n\nHere it is")
    assert payload["text"].endswith("Download the guide: https://shop.test/d/3")
    assert "<p>Hi Åsa &lt;b&gt;,</p>" in payload["html"]
    assert (
        '<a href="https://shop.test/guide.pdf">https://shop.test/guide.pdf</a>.<br>'
        in (payload["html"])
    )
    assert "Enjoy &lt;3" in payload["html"]
    assert (
        '<a class="button" href="https://shop.test/d/3">Download the guide</a>' in payload["html"]
    )
    assert "preheader" not in payload and "track" not in payload and "when_blocked" not in payload
    assert payload["tracking"] == {
        "flow_id": 2,
        "journey_id": 11,
        "node_id": "confirm",
        "contact_id": 7,
    }


async def test_email_fallbacks_and_skips() -> None:
    nameless = await run_node(SendEmail, EMAIL, profile=contact(first_name=""))
    assert nameless.messages[0].payload["subject"] == "Your guide, friend"
    no_address = await run_node(SendEmail, EMAIL, profile=contact(email=None), node_id="m")
    assert no_address.messages == () and no_address.port == "next"
    assert no_address.data == {"m": {"skipped": "no email address"}}
    unsubscribed = await run_node(SendEmail, EMAIL, profile=contact(consent=WITHDRAWN))
    assert unsubscribed.messages == ()
    receipt = await run_node(
        SendEmail, {**EMAIL, "category": "transactional"}, profile=contact(consent=WITHDRAWN)
    )
    assert len(receipt.messages) == 1 and receipt.messages[0].category == "transactional"


async def test_email_delivery_options_reach_the_payload() -> None:
    options = {"preheader": "For {{ first_name }}", "track": False, "when_blocked": "drop"}
    outcome = await run_node(SendEmail, {**EMAIL, **options})
    payload = outcome.messages[0].payload
    assert payload["preheader"] == "For Ada"
    assert payload["track"] is False and payload["when_blocked"] == "drop"
    sms = await run_node(
        SendSms, {"text": "Hi", "when_blocked": "defer"}, profile=contact(phone="+46701234567")
    )
    assert sms.messages[0].payload["when_blocked"] == "defer"


def test_email_config_errors_read_well() -> None:
    errors = config_errors(SendEmail, {"subject": "Hi {{ frist_name }}", "body": ""})
    assert errors["subject"].startswith("Unknown merge field {{ frist_name }}")
    assert "body" in errors
    assert "button_url" in config_errors(SendEmail, {**EMAIL, "button_url": "javascript:alert(1)"})
    assert "from_address" in config_errors(SendEmail, {**EMAIL, "from_address": "nobody"})


async def test_sms_needs_a_phone_and_consent() -> None:
    config = {"text": "Hi {{ first_name }}, your code is {{ trigger.code }}"}
    data = {"trigger": {"properties": {"code": "1234"}}}
    outcome = await run_node(SendSms, config, profile=contact(phone="+46701234567"), data=data)
    [message] = outcome.messages
    assert message.channel == "sms"
    assert message.payload["to"] == "+46701234567"
    assert message.payload["text"] == "Hi Ada, your code is 1234"
    assert (await run_node(SendSms, config, profile=contact(phone=None))).messages == ()
    opted_out = contact(phone="+46701234567", consent=WITHDRAWN)
    assert (await run_node(SendSms, config, profile=opted_out)).messages == ()


async def test_task_goes_to_the_contacts_owner() -> None:
    config = {"title": "Call {{ first_name }}  {{ last_name }}", "note": "Downloaded the guide"}
    outcome = await run_node(NotifyOwner, config, profile=contact(4, owner_id=12))
    [message] = outcome.messages
    assert message.channel == "task"
    assert message.category == "transactional"
    assert message.payload == {
        "owner_id": 12,
        "contact_id": 4,
        "title": "Call Ada",
        "note": "Downloaded the guide",
        "due_at": (DEFAULT_NOW + timedelta(days=1)).isoformat(),
    }
    assert (await run_node(NotifyOwner, config, profile=visitor())).messages == ()


async def test_webhook_carries_contact_fields_and_secret() -> None:
    config = {
        "url": "https://crm.test/hook?who={{ email }}",
        "secret": "s3cret-s3cret-s3cret",
        "fields": {"source": "{{ trigger.utm }}", "stage": "{{ lifecycle_stage }}"},
    }
    outcome = await run_node(
        SendWebhook,
        config,
        profile=contact(3, tags=("vip",), lifecycle_stage="lead"),
        data={"trigger": {"properties": {"utm": "spring"}}},
    )
    [message] = outcome.messages
    assert message.channel == "webhook"
    assert message.payload["url"] == "https://crm.test/hook?who=ada3%40example.test"
    assert message.payload["secret"] == "s3cret-s3cret-s3cret"
    body = message.payload["body"]
    assert body["fields"] == {"source": "spring", "stage": "lead"}
    assert body["contact"]["tags"] == ["vip"]
    assert body["journey_id"] == 1 and body["contact_id"] == 3
    bare = await run_node(SendWebhook, {**config, "include_contact": False})
    assert "contact" not in bare.messages[0].payload["body"]
    errors = config_errors(SendWebhook, {"url": "ftp://x", "secret": "short"})
    assert set(errors) == {"url", "secret"}
    schema = SendWebhook.config_model.model_json_schema()["properties"]["secret"]
    assert schema["writeOnly"] is True


async def test_a_webhook_without_a_signing_secret_is_valid_and_unsigned() -> None:
    """Many receivers (a Zapier hook, a CRM inbox) have no way to check a signature."""
    config = {"url": "https://hooks.example.com/lead"}
    assert config_errors(SendWebhook, config) == {}
    [message] = (await run_node(SendWebhook, config)).messages
    assert "secret" not in message.payload


async def test_web_content_is_sanitised_and_works_for_visitors() -> None:
    config = {"slot": "hero", "html": "<h2>Hi {{ first_name | there }}</h2><script>x()</script>"}
    outcome = await run_node(ShowWebContent, config, profile=visitor("v-9"))
    [message] = outcome.messages
    assert message.channel == "web_content"
    assert message.payload["html"] == "<h2>Hi there</h2>"
    assert message.payload["visitor_id"] == "v-9" and message.payload["contact_id"] is None
    assert message.payload["expires_at"] == (DEFAULT_NOW + timedelta(days=7)).isoformat()
    named = await run_node(
        ShowWebContent, config, profile=contact(first_name="<img src=x onerror=y>")
    )
    assert named.messages[0].payload["html"] == "<h2>Hi &lt;img src=x onerror=y&gt;</h2>"
    assert "slot" in config_errors(ShowWebContent, {"slot": "Hero Banner", "html": "x"})


async def test_web_content_can_show_a_library_block_instead() -> None:
    outcome = await run_node(ShowWebContent, {"slot": "hero", "block_id": 12})
    payload = outcome.messages[0].payload
    assert payload["block_id"] == 12 and "html" not in payload
    neither = config_errors(ShowWebContent, {"slot": "hero"})
    both = config_errors(ShowWebContent, {"slot": "hero", "html": "<b>x</b>", "block_id": 1})
    assert "one of the two" in neither["__root__"] and "one of the two" in both["__root__"]
