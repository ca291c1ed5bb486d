"""Template helpers shared by the pages and the admin (provider labels, safe source links)."""
