"""Who is asking and what they may do: sessions for people, API keys for servers, roles for both."""
