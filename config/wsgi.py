import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# Metrics files of processes that have exited (an earlier run's workers) would be added to
# every scrape forever; each worker drops them as it starts.
from django.conf import settings  # noqa: E402

from config.metrics import forget_dead_processes  # noqa: E402

forget_dead_processes(settings.METRICS_DIR)
