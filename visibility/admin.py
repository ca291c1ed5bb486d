"""Admin for tracked brands; saving goes through the brand services, so limits hold and answers are re-analysed."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from oneglanse.exceptions import DomainError
from visibility.models import Brand
from visibility.services.brands import brand_create, brand_delete, brand_update
from workspaces.admin import MemberScopedAdmin


class LinesField(forms.CharField):
    """A list of strings edited as one per line."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value

    def to_python(self, value) -> list[str]:
        return [line.strip() for line in (value or "").splitlines() if line.strip()]


class BrandAdminForm(forms.ModelForm):
    aliases = LinesField(required=False, help_text="One per line: other names that count as a mention.")
    domains = LinesField(required=False, help_text="One per line, e.g. hubspot.com (subdomains count too).")

    class Meta:
        model = Brand
        fields = ["workspace", "name", "aliases", "domains", "is_own", "match_case"]


@admin.register(Brand)
class BrandAdmin(MemberScopedAdmin):
    form = BrandAdminForm
    list_display = ["name", "workspace", "is_own", "match_case", "alias_list", "domain_list"]
    list_filter = ["is_own"]
    search_fields = ["name", "workspace__name"]

    @admin.display(description="aliases")
    def alias_list(self, brand: Brand) -> str:
        return ", ".join(brand.aliases)

    @admin.display(description="domains")
    def domain_list(self, brand: Brand) -> str:
        return ", ".join(brand.domains)

    def save_model(self, request: HttpRequest, obj: Brand, form, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in ("name", "aliases", "domains", "is_own", "match_case")}
        try:
            if change:
                brand_update(brand=Brand.objects.get(pk=obj.pk), **fields)
            else:
                form.instance = brand_create(workspace=form.cleaned_data["workspace"], **fields)
                obj.pk = form.instance.pk
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)

    def delete_model(self, request: HttpRequest, obj: Brand) -> None:
        brand_delete(brand=obj)

    def delete_queryset(self, request: HttpRequest, queryset) -> None:
        for brand in queryset:
            brand_delete(brand=brand)
