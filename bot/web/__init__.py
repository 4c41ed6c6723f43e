"""The web page: a chat page for people and a console for the operator, in the bot's own process.

`server` builds the ASGI app and its uvicorn listener; `auth` guards every route; `chat` and
`console` hold the routes; `pages` renders HTML with every value escaped.
"""
