"""kpibot's transport and wiring: callback server, crypto, WeCom client, dispatcher, sender, scheduler, storage."""
