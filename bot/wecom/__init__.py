"""Transport: WeCom's callback, the inbox and outbox, the sender, the API client, cards and the HTTP edge."""
