"""nonebot2 plugins (QQ)."""
