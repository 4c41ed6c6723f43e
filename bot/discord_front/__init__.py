"""The Discord front-end: gateway messages to the pipeline, replies back as a good server member.

`serve_discord(app)` runs the client inside the caller's event loop; startup failures raise
`DiscordStartError` carrying one line that says what to fix.
"""

from bot.discord_front.serve import DiscordStartError, serve_discord
from bot.split import split_text

__all__ = ["DiscordStartError", "serve_discord", "split_text"]
