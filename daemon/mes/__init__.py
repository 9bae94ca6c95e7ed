"""The line's side: MQTT, the outbox, the watch folder, the recipe library, the command controller."""
