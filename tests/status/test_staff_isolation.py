"""Every staff status view refuses anonymous visitors, non-staff users and account hosts."""

import pytest

from status.models import Notification, UpdateTemplate
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def urls(demo) -> list[tuple[str, str]]:
    incident = demo["email-sending"].incidents.get()
    template = UpdateTemplate.objects.first()
    notification = Notification.objects.create(channel="email", target="a@b.c", event="x")
    component = demo["email-sending"]
    return [
        ("get", "/staff/status/"),
        ("post", f"/staff/status/components/{component.code}/status/"),
        ("get", "/staff/status/incidents/new/"),
        ("post", "/staff/status/incidents/new/"),
        ("get", f"/staff/status/incidents/{incident.code}/"),
        ("post", f"/staff/status/incidents/{incident.code}/"),
        ("post", f"/staff/status/incidents/{incident.code}/resolve/"),
        ("post", f"/staff/status/incidents/{incident.code}/postmortem/"),
        ("get", "/staff/status/maintenances/new/"),
        ("post", "/staff/status/maintenances/new/"),
        ("post", "/staff/status/preview/"),
        ("get", "/staff/status/templates/"),
        ("post", "/staff/status/templates/"),
        ("post", f"/staff/status/templates/{template.pk}/delete/"),
        ("get", "/staff/status/subscribers/"),
        ("post", f"/staff/status/notifications/{notification.pk}/retry/"),
    ]


def test_anonymous_visitors_are_sent_to_the_staff_login(urls):
    client = client_for(None)
    for method, url in urls:
        response = getattr(client, method)(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/staff/login/?next="), url


def test_a_control_plane_user_who_is_not_staff_is_refused(urls, cast):
    client = client_for(None, cast.paul)
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 403, url


def test_account_users_find_nothing_on_their_dashboard_host(urls, cast):
    for user, account in ((cast.alice, cast.acme), (cast.charlie, cast.globex)):
        client = client_for(account, user)
        for method, url in urls:
            assert getattr(client, method)(url).status_code == 404, url


def test_the_status_host_has_no_staff_console(urls, publish, status_client):
    publish()
    for method, url in urls:
        assert getattr(status_client, method)(url).status_code in (403, 404), url


def test_nothing_changed_after_all_those_refusals(urls, cast):
    for client in (client_for(None), client_for(None, cast.paul)):
        for method, url in urls:
            getattr(client, method)(url)
    assert UpdateTemplate.objects.count() == 5
    assert Notification.objects.get().state == "pending"
