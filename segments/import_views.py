"""CSV import pages: upload, preview and map, progress, report."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import editor_required, teammate_required
from accounts.models import AuditEntry, control_plane
from ingest.models import ImportTask
from segments import imports
from segments.access import get_import
from segments.models import Import

SKIP = ""


class UploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file", help_text="UTF-8, with a header line naming the columns."
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is larger than {settings.IMPORT_MAX_BYTES // 2**20} MB."
            )
        if not upload.name.lower().endswith((".csv", ".txt")):
            raise forms.ValidationError("Upload a .csv file.")
        return upload


class MappingForm(forms.Form):
    identifier_column = forms.ChoiceField(label="Identifier column")
    identifier_kind = forms.ChoiceField(
        choices=Import.IdentifierKind.choices, label="The identifier is a"
    )

    def __init__(self, *args, columns: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.columns = columns
        self.fields["identifier_column"].choices = [(c, c) for c in columns]
        for index, column in enumerate(columns):
            self.fields[f"map_{index}"] = forms.CharField(
                label=f"“{column}” becomes attribute", required=False, max_length=150, initial=column,
                help_text="Leave empty to skip this column.",
            )  # fmt: skip

    def clean(self) -> dict:
        data = super().clean()
        mapping = {}
        for index, column in enumerate(self.columns):
            name = (data.get(f"map_{index}") or SKIP).strip()
            if column == data.get("identifier_column") and data.get("identifier_kind") == "id":
                continue  # the identifier itself is not an attribute
            if name:
                if name.startswith("_"):
                    self.add_error(f"map_{index}", "Attribute names cannot start with _.")
                mapping[column] = name
        if len(mapping) > 300:
            raise forms.ValidationError("Map at most 300 columns to attributes.")
        data["mapping"] = mapping
        return data


@teammate_required
def import_list(request: HttpRequest) -> HttpResponse:
    form = UploadForm()
    if request.method == "POST":
        if not request.user.can_edit:
            return render(request, "403.html", status=403)
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            job = start_upload(request, form.cleaned_data["file"])
            return redirect("import", import_id=job.pk)
    jobs = Import.objects.recent()[:50]
    return render(request, "segments/imports.html", {"form": form, "jobs": jobs})


def start_upload(request: HttpRequest, upload) -> Import:
    stored_as, size = imports.store_upload(upload)
    job = Import.objects.create(filename=upload.name[:255], stored_as=stored_as, size_bytes=size,
                                created_by=request.user.email)  # fmt: skip
    header, _, problem = imports.preview(imports.stored_path(job))
    if problem:
        imports.fail(job, problem)
    else:
        job.columns = header
        job.save(update_fields=["columns"])
    AuditEntry.record(request.user, "import.uploaded", upload.name, size=size)
    return job


@teammate_required
def import_detail(request: HttpRequest, import_id: int) -> HttpResponse:
    job = get_import(request, import_id)
    context = {"job": job}
    if job.state == Import.State.UPLOADED:
        _, sample, _ = imports.preview(imports.stored_path(job))
        context |= {"sample": sample, "form": MappingForm(columns=job.columns)}
    if job.state in (Import.State.DONE, Import.State.FAILED):
        context["rejections"] = Paginator(job.rejections.all(), 100).get_page(
            request.GET.get("page")
        )
    if request.htmx and request.GET.get("part") == "progress":
        return render(request, "segments/import.html#import-progress", context)
    return render(request, "segments/import.html", context)


@require_POST
@editor_required
def start_import(request: HttpRequest, import_id: int) -> HttpResponse:
    job = get_import(request, import_id)
    if job.state != Import.State.UPLOADED:
        messages.info(request, "This import has already started.")
        return redirect("import", import_id=job.pk)
    form = MappingForm(request.POST, columns=job.columns)
    if not form.is_valid():
        _, sample, _ = imports.preview(imports.stored_path(job))
        return render(request, "segments/import.html", {"job": job, "form": form, "sample": sample})
    with transaction.atomic():
        job.identifier_column = form.cleaned_data["identifier_column"]
        job.identifier_kind = form.cleaned_data["identifier_kind"]
        job.mapping = form.cleaned_data["mapping"]
        job.state = Import.State.QUEUED
        job.save(update_fields=["identifier_column", "identifier_kind", "mapping", "state"])
        AuditEntry.record(request.user, "import.started", job.filename, mapping=job.mapping)
        with control_plane():
            ImportTask.objects.create(account_id=request.account.pk, import_id=job.pk)
    return redirect("import", import_id=job.pk)
