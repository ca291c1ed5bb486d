"""Routes of the server-rendered pages (sign-in, workspaces, a group's live page)."""
urlpatterns: list = []
