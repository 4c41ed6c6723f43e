"""The Discord front-end: gateway messages to the pipeline, replies back as a good server member.

`new_client(cfg)` makes the client and `discord_poster(client)` the way the character speaks first
into a channel (handed to `App.open`); `serve_discord(app, client)` then runs the client inside the
caller's event loop; startup failures raise `DiscordStartError` carrying one line that says what to fix.
"""

from bot.discord_front.front import discord_poster, new_client
from bot.discord_front.serve import DiscordStartError, serve_discord
from bot.outbound.split import split_text

__all__ = ["DiscordStartError", "discord_poster", "new_client", "serve_discord", "split_text"]
