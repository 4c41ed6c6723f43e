"""The bot: config, pipeline, CLI and platform front-ends."""
