"""The demo user and workspace that a local run starts with (simulated providers)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from oneglanse.provider_ids import PROVIDER_IDS
from prompts.models import Prompt
from workspaces.models import Membership, Workspace

DEMO_USERNAME = "demo"
DEMO_WORKSPACE_NAME = "Demo brand"
DEMO_PROMPTS = (
    "What are the best CRM tools for a 20-person startup?",
    "Which project management software do agencies recommend?",
    "What is the best email marketing platform for e-commerce?",
    "Which customer support help desk is easiest to set up?",
    "What are good alternatives to Salesforce for small businesses?",
)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    token: str
    workspace: Workspace


def demo_ensure() -> DemoLogin:
    """Create the demo user (a staff user, password kept in var/) and workspace once; idempotent."""
    password_file = settings.VAR_DIR / "demo_password"
    with transaction.atomic():
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
        )
        if created or not password_file.exists():
            password = secrets.token_urlsafe(12)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password)
            password_file.chmod(0o600)
            user.set_password(password)
            user.save()
        password = password_file.read_text().strip()
        workspace = Workspace.objects.filter(name=DEMO_WORKSPACE_NAME, memberships__user=user).first()
        if workspace is None:
            workspace = Workspace.objects.create(name=DEMO_WORKSPACE_NAME, enabled_providers=list(PROVIDER_IDS))
            Membership.objects.create(user=user, workspace=workspace, role=Membership.Role.OWNER)
            Prompt.objects.bulk_create([Prompt(workspace=workspace, text=text) for text in DEMO_PROMPTS])
        token, _ = Token.objects.get_or_create(user=user)
    return DemoLogin(username=user.username, password=password, token=token.key, workspace=workspace)
