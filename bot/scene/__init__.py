"""A scene: several characters in one channel, a turn-taking policy over them, one transcript."""
