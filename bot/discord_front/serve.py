"""Running the Discord client inside an existing event loop, with one-line startup errors."""

from __future__ import annotations

import logging

import aiohttp
import discord

from bot.app import App
from bot.discord_front.front import attach

log = logging.getLogger(__name__)

INTENT_HELP = (
    "Discord refused the Message Content intent: enable it for this bot in the Developer Portal "
    "(Applications → your app → Bot → Privileged Gateway Intents → Message Content Intent)"
)


class DiscordStartError(Exception):
    """One clear line: bad token, no network, missing intents."""


async def serve_discord(app: App, client: discord.Client) -> None:
    """Run the client (`new_client`, made before the app so the app could be given its poster) on app
    until cancelled; raise DiscordStartError with one clear line on bad token / no network (aiohttp
    ClientConnectorDNSError) / missing privileged intents."""
    cfg = app.settings.discord
    if not cfg.configured:
        raise DiscordStartError("no Discord token: set BOT_DISCORD__TOKEN (environment or .env)")
    attach(app, client)
    try:
        await client.start(cfg.token.get_secret_value())
    except discord.LoginFailure:
        raise DiscordStartError("Discord rejected the bot token (BOT_DISCORD__TOKEN): reset it on the Bot page and set it again") from None
    except discord.PrivilegedIntentsRequired:
        raise DiscordStartError(INTENT_HELP) from None
    except aiohttp.ClientConnectorError as exc:  # DNS failures are a subclass
        raise DiscordStartError(f"cannot reach Discord at {exc.host}: {_first_line(exc.os_error)} (no network?)") from None
    except discord.GatewayNotFound:
        raise DiscordStartError("Discord's gateway cannot be found (an outage?); try again later") from None
    except discord.ConnectionClosed as exc:  # 4004 bad auth, 4010/4011 sharding, 4013 intents...
        raise DiscordStartError(f"Discord closed the gateway (code {exc.code}): {exc.reason or 'see the close code'}") from None
    except discord.HTTPException as exc:
        raise DiscordStartError(f"Discord answered HTTP {exc.status}: {_first_line(exc.text or exc)}") from None
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise DiscordStartError(f"cannot reach Discord: {_first_line(exc) or type(exc).__name__}") from None
    finally:
        if not client.is_closed():
            await client.close()


def _first_line(value: object) -> str:
    """The first line of an error text (messages stay one line)."""
    text = str(value).strip()
    return text.splitlines()[0] if text else ""
