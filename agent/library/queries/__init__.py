"""Read-only questions the dashboard asks the library, one module per area.

`readonly` opens the database so a reader can never write (the agent never waits for the web);
`masters`, `groups`, `needs_view`, `lights`, `files` (downloads), `nights` (reports) and
`campaigns` turn the library's answers into the plain rows the pages and the JSON API show.
"""
