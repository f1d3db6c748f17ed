"""The account's people and their rows, as dashboard views may reach them.

A dashboard request already runs on its own account's schema alone, so an id from another
account finds nothing here; the role checks are the decorators in accounts.access.
"""

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from segments.models import Import, Person


def get_person(request: HttpRequest, person_id: int) -> Person:
    return get_object_or_404(Person, pk=person_id)


def get_import(request: HttpRequest, import_id: int) -> Import:
    return get_object_or_404(Import, pk=import_id)
